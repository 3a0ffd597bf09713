"""The report options end to end on real Postfix: the seed report's fastmail case, told by --trace and written
as JSON, JUnit XML and HTML."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reports_and_trace_of_the_fastmail_secure_defers_case(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("results.json", "junit.xml", "report.html")}
    command = [
        sys.executable, "-c", "from harness.cli import main; main()", "run",
        "--json", str(files["results.json"]), "--junit", str(files["junit.xml"]), "--html", str(files["report.html"]),
        "--trace", "-k", "*secure-defers", "scenarios/seed/fastmail.yaml",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    # The trace tells the story, in order.
    story = [
        "MX query fastmail.fm. → NOERROR AD=0: MX 10 in1-smtp.messagingengine.com.",
        "connection to in1-smtp.messagingengine.com[66.111.4.74]:25 from ",
        "leaf certificate names: *.messagingengine.com, messagingengine.com, mail.messagingengine.com",
        "in1-smtp.messagingengine.com[66.111.4.74]:25: STARTTLS",
        "server certificate verification failed for in1-smtp.messagingengine.com[66.111.4.74]:25: "
        "num=62:hostname mismatch",
        "Untrusted TLS connection established to in1-smtp.messagingengine.com[66.111.4.74]:25: TLSv1.3",
        "dsn=4.7.5, status=deferred (Server certificate not verified)",
    ]
    positions = [out.find(step) for step in story]
    assert all(p >= 0 for p in positions), list(zip(story, positions, strict=True))
    assert positions == sorted(positions), out
    assert "[0] /C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com" in out
    # The fake server read which smtp(8) process connected (shared PID namespace): the one that logged the deferral.
    # (The first such line also says why the source address is the server's own: the pod's loopback.)
    opener = re.search(r"connection to in1-smtp\S+ from \S+ \(smtp\[(\d+)\] in Postfix's log[;)]", out)
    assert opener, out
    assert re.search(rf"postfix/smtp\[{opener[1]}\]: \w+: to=<[^>]+>, relay=in2-smtp.*status=deferred", out), out
    assert "1 passed, 0 failed" in out
    # The result table (not a terminal: 200 columns): the scenario and its release in the heading, one row.
    assert re.search(r"\nfastmail-secure-nexthop · Postfix \d+\.\d+\.\d+ · 1 case: 1 passed, 0 failed · ", out)
    assert "relay=in2-smtp.messagingengine.com[192.0.2.10]:25" in out
    for name, path in files.items():
        assert f"report: {path}" in out, name

    document = json.loads(files["results.json"].read_text())
    assert document["schema_version"] == 1 and document["passed"] is True
    assert document["postfix_releases"] and document["summary"]["cases"] == 1
    (case,) = document["cases"]
    assert (case["scenario"], case["case"]) == ("fastmail-secure-nexthop", "secure-defers")
    observed = case["recipients"][0]["observed"]
    assert (observed["status"], observed["dsn"], observed["tls"]) == ("deferred", "4.7.5", "Untrusted")
    assert observed["server"]["starttls"] is True and observed["server"]["tls_version"]
    assert ("MX", "fastmail.fm.") in [(q["qtype"], q["qname"]) for q in case["dns_queries"]]
    assert "*.messagingengine.com" in case["server_names"]["in1-smtp.messagingengine.com"]
    assert "smtp_tls_policy_maps = hash:/etc/postfix/tls_policy" in case["main_cf"]
    assert case["maps"]["/etc/postfix/tls_policy"].startswith("fastmail.fm secure")
    message_id = case["recipients"][0]["message_id"]
    assert message_id and any(f"message-id=<{message_id}>" in line for line in case["postfix_log"])

    root = ET.fromstring(files["junit.xml"].read_text())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    testcase = root.find(".//testcase")
    assert testcase is not None and testcase.get("classname") == "fastmail-secure-nexthop.secure-defers"

    page = files["report.html"].read_text()
    assert "secure-defers" in page and "https://" not in page and "<script" not in page
    assert '<span class="name">*.messagingengine.com</span>' in page
    assert '<details class="config">' in page and "tls_policy" in page
    assert "fastmail-secure-nexthop.secure-defers.mxharness.test" in page  # the Message-ID
    text = re.sub(r"<[^>]+>", "", page)
    assert "Untrusted TLS connection established to in1-smtp.messagingengine.com[66.111.4.74]:25" in text
