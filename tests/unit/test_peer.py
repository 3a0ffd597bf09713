"""The peer entry point: world spec, address binding, and the real process serving DNS and SMTP."""

from __future__ import annotations

import json
import queue
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme
from dnslib import RCODE, DNSRecord

from harness.dns import DnsFault, Record
from harness.images import PEER_MODULES
from harness.peer import (
    DnsSpec,
    PeerError,
    ServerSpec,
    WorldSpec,
    WorldSpecError,
    bind_addresses,
    parse_events,
)
from harness.smtp import Replies

REPO = Path(__file__).resolve().parents[2]
MX = "in1-smtp.messagingengine.com"
STARTUP_TIMEOUT_S = 10.0


def world(*, cert_chain: str | None = "tls/mx.pem", key: str | None = "tls/mx.key") -> WorldSpec:
    return WorldSpec(
        dns=DnsSpec(
            "127.0.0.1",
            0,
            (
                Record("fastmail.fm", "MX", f"10 {MX}"),
                Record(MX, "A", "127.0.0.2"),
            ),
        ),
        addresses=("127.0.0.2",),
        servers=(ServerSpec(MX, "127.0.0.2", 0, cert_chain, key),),
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def world_dir(tmp_path: Path, ca: trustme.CA) -> Path:
    leaf = ca.issue_cert(MX)
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls/mx.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    (tmp_path / "tls/mx.key").write_bytes(leaf.private_key_pem.bytes())
    return tmp_path


class Peer:
    """The peer as a subprocess, its stdout read by a thread into a queue."""

    def __init__(self, spec_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.peer", str(spec_path), "--no-bind"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_event(self, name: str) -> dict[str, Any]:
        while True:
            try:
                line = self.lines.get(timeout=STARTUP_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"no {name!r} event within {STARTUP_TIMEOUT_S} s; got {self.seen}") from None
            if line is None:
                raise AssertionError(f"peer exited before a {name!r} event; got {self.seen}")
            self.seen.append(line)
            events = parse_events([line])
            if events and events[0]["event"] == name:
                return events[0]

    def finish(self) -> tuple[int, list[dict[str, Any]], str]:
        """Wait for exit; return the exit code, every event and stderr."""
        code = self.proc.wait(timeout=STARTUP_TIMEOUT_S)
        self._reader.join(timeout=STARTUP_TIMEOUT_S)
        while not self.lines.empty():
            line = self.lines.get_nowait()
            if line is not None:
                self.seen.append(line)
        assert self.proc.stderr is not None
        stderr = self.proc.stderr.read()
        return code, parse_events(self.seen), stderr

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self._reader.join(timeout=STARTUP_TIMEOUT_S)


@pytest.fixture
def run_peer() -> Iterator[Any]:
    peers: list[Peer] = []

    def start(spec_path: Path) -> Peer:
        peer = Peer(spec_path)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.close()


def test_peer_serves_dns_and_smtp_then_stops_on_sigterm(world_dir: Path, ca: trustme.CA, run_peer: Any) -> None:
    spec_path = world_dir / "world.json"
    spec_path.write_text(world().to_json())
    peer = run_peer(spec_path)
    ready = peer.wait_event("ready")
    assert ready["addresses"] == ["127.0.0.2"] and ready["servers"] == 1
    (endpoint,) = ready["endpoints"]
    dns_port, smtp_port = ready["dns"]["port"], endpoint["port"]

    reply = DNSRecord.parse(DNSRecord.question("fastmail.fm", "MX").send("127.0.0.1", dns_port, timeout=2.0))
    assert reply.header.rcode == RCODE.NOERROR and reply.header.ad == 0
    assert [rr.rdata.toZone() for rr in reply.rr] == [f"10 {MX}."]

    context = ssl.create_default_context()
    ca.configure_trust(context)
    with smtplib.SMTP("127.0.0.2", smtp_port, local_hostname="postfix.test", timeout=5.0) as client:
        client._host = MX  # type: ignore[assignment]  # verify and send SNI for the MX name, as Postfix does
        client.starttls(context=context)
        client.sendmail("a@example.org", ["b@fastmail.fm"], b"Message-ID: <m1@example.org>\r\n\r\nhi\r\n")
    peer.proc.send_signal(signal.SIGTERM)
    code, events, stderr = peer.finish()

    assert code == 0, stderr
    assert events[0]["event"] == "ready" and events[-1] == {"event": "stopped"}
    (dns,) = [e for e in events if e["event"] == "dns"]
    assert (dns["qname"], dns["qtype"], dns["rcode"]) == ("fastmail.fm.", "MX", "NOERROR")
    (session,) = [e for e in events if e["event"] == "session"]
    assert session["server"] == MX and session["tls"]["sni"] == MX
    assert [m["message_id"] for m in session["messages"]] == ["m1@example.org"]
    assert "tls" in [e.get("stage") for e in events if e["event"] == "smtp"]


def test_peer_serves_dns_and_smtp_faults(world_dir: Path, ca: trustme.CA, run_peer: Any) -> None:
    spec = WorldSpec(
        dns=DnsSpec(
            "127.0.0.1",
            0,
            (Record("fastmail.fm", "MX", f"10 {MX}", dnssec=True), Record(MX, "A", "127.0.0.2")),
            (DnsFault(MX, "A", "servfail"),),
            dnssec_probe=True,
        ),
        addresses=("127.0.0.2",),
        servers=(
            ServerSpec(
                MX,
                "127.0.0.2",
                0,
                "tls/mx.pem",
                "tls/mx.key",
                implicit_tls=True,
                replies=Replies.from_dict({"rcpt": {"default": "450 4.2.0 mailbox busy"}}),
            ),
        ),
    )
    spec_path = world_dir / "world.json"
    spec_path.write_text(spec.to_json())
    peer = run_peer(spec_path)
    ready = peer.wait_event("ready")
    dns_port, smtp_port = ready["dns"]["port"], ready["endpoints"][0]["port"]

    def ask(name: str, qtype: str) -> DNSRecord:
        return DNSRecord.parse(DNSRecord.question(name, qtype).send("127.0.0.1", dns_port, timeout=2.0))

    assert ask(".", "NS").header.ad == 1
    assert ask("fastmail.fm", "MX").header.ad == 1
    assert ask(MX, "A").header.rcode == RCODE.SERVFAIL
    context = ssl.create_default_context()
    context.check_hostname = False
    ca.configure_trust(context)
    with smtplib.SMTP_SSL("127.0.0.2", smtp_port, timeout=5.0, context=context) as client:
        client.ehlo()
        client.mail("a@example.org")
        assert client.rcpt("b@fastmail.fm")[0] == 450
    peer.proc.send_signal(signal.SIGTERM)
    code, events, stderr = peer.finish()

    assert code == 0, stderr
    assert [(e["qtype"], e["rcode"], e["ad"], e["fault"]) for e in events if e["event"] == "dns"] == [
        ("NS", "NOERROR", True, None),
        ("MX", "NOERROR", True, None),
        ("A", "SERVFAIL", False, "servfail"),
    ]
    (session,) = [e for e in events if e["event"] == "session"]
    assert session["tls"]["implicit"] is True and session["tls"]["client_cert"] is False
    assert [e["reply"] for e in events if e.get("stage") == "rcpt"] == [450]


def test_peer_with_a_missing_certificate_reports_an_error_and_exits_1(world_dir: Path, run_peer: Any) -> None:
    spec_path = world_dir / "world.json"
    spec_path.write_text(world(cert_chain="tls/missing.pem").to_json())
    code, events, _stderr = run_peer(spec_path).finish()
    assert code == 1
    (error,) = events
    assert error["event"] == "error"
    assert "missing.pem" in error["message"] and "Hint:" in error["message"]


def test_peer_with_a_bad_spec_version_reports_an_error_and_exits_1(world_dir: Path, run_peer: Any) -> None:
    spec_path = world_dir / "world.json"
    spec_path.write_text(json.dumps({**world().to_dict(), "version": 2}))
    code, events, _stderr = run_peer(spec_path).finish()
    assert code == 1
    assert events == [{"event": "error", "message": events[0]["message"]}]
    assert "version 2" in events[0]["message"]


def test_peer_imports_only_what_the_peer_image_holds() -> None:
    # The image holds the standard library, the PEER_PACKAGES and the PEER_MODULES of harness: nothing else.
    shipped = sorted(f"harness.{m.removesuffix('.py')}" for m in PEER_MODULES if m != "__init__.py")
    probe = (
        "import sys, harness.peer; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic', 'cryptography', 'trustme', 'docker', 'ruamel', 'click', 'rich', 'pytest'} "
        f"or (m.startswith('harness.') and m not in {shipped!r})))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert "harness._smtp_tls" in shipped  # control: the new modules are listed


def test_world_spec_round_trips_through_json() -> None:
    spec = world()
    assert WorldSpec.from_json(spec.to_json()) == spec


def test_world_spec_reads_the_documented_layout(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "version": 1,
            "dns": {
                "listen": "127.0.0.53",
                "port": 53,
                "records": [{"name": "fastmail.fm", "type": "MX", "value": f"10 {MX}", "ttl": 300}],
            },
            "addresses": ["66.111.4.74", "192.0.2.1", "2001:db8::1"],
            "servers": [
                {
                    "host": MX,
                    "address": "66.111.4.74",
                    "port": 25,
                    "cert_chain": "tls/me.pem",
                    "key": "tls/me.key",
                },
                {
                    "host": "plain.example",
                    "address": "192.0.2.1",
                    "port": 25,
                    "cert_chain": None,
                    "key": None,
                },
            ],
        }
    )
    spec = WorldSpec.from_json(text)
    assert spec.dns.records == (Record("fastmail.fm", "MX", f"10 {MX}"),)
    tls, plain = (server.endpoint(tmp_path) for server in spec.servers)
    assert tls.cert_chain_file == str(tmp_path / "tls/me.pem") and tls.key_file == str(tmp_path / "tls/me.key")
    assert plain.cert_chain_file is None and not plain.offers_starttls


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2 is not supported"),
        ({"addresses": ["not-an-ip"]}, r"addresses\[0\]"),
        ({"servers": [{"host": MX}]}, "missing or mistyped key"),
        ({"dns": {"records": [{"name": "x.example", "type": "A", "value": "1.2.3"}]}}, "cannot parse value"),
        (
            {
                "dns": {
                    "records": [
                        {"name": "x", "type": "CNAME", "value": "y"},
                        {"name": "x", "type": "A", "value": "192.0.2.1"},
                    ]
                }
            },
            "CNAME and other data",
        ),
        ({"servers": [{"host": MX, "address": "127.0.0.2", "cert_chain": "a.pem"}]}, "go together"),
    ],
)
def test_invalid_world_specs_are_rejected(change: dict[str, Any], message: str) -> None:
    with pytest.raises(WorldSpecError, match=message):
        WorldSpec.from_dict({**world().to_dict(), **change})


def test_world_spec_that_is_not_json_is_rejected() -> None:
    with pytest.raises(WorldSpecError, match="not valid JSON"):
        WorldSpec.from_json("{version: 1")


def test_parse_events_keeps_json_objects_with_an_event_only() -> None:
    lines = [
        '{"event": "ready", "servers": 1}\n',
        "Traceback (most recent call last):\n",
        "[1, 2]\n",
        '{"x": 1}\n',
        "",
    ]
    assert parse_events(lines) == [{"event": "ready", "servers": 1}]


class FakeIp:
    """Records ``ip`` invocations; ``addr show`` lists what is already on the interfaces."""

    def __init__(self, present: str, fail: bool = False) -> None:
        self.present = present
        self.fail = fail
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if args[:3] == ["-o", "addr", "show"]:
            return subprocess.CompletedProcess(args, 0, self.present, "")
        return subprocess.CompletedProcess(
            args, 2 if self.fail else 0, "", "RTNETLINK answers: Operation not permitted"
        )


LISTING = (
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
    "1: lo    inet 66.111.4.74/32 scope global lo\\       valid_lft forever preferred_lft forever\n"
    "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever\n"
)


def test_bind_adds_missing_addresses_to_lo_and_skips_present_ones() -> None:
    ip = FakeIp(LISTING)
    added = bind_addresses(["66.111.4.74", "192.0.2.1", "2001:db8::1"], run=ip)
    assert added == ["192.0.2.1", "2001:db8::1"]
    assert ip.calls[1:] == [
        ["addr", "add", "192.0.2.1/32", "dev", "lo"],
        ["-6", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad"],
    ]


def test_bind_failure_is_a_peer_error_with_a_hint() -> None:
    with pytest.raises(PeerError, match=r"cannot add 192\.0\.2\.1 to lo: .*Operation not permitted.*Hint:"):
        bind_addresses(["192.0.2.1"], run=FakeIp(LISTING, fail=True))


def test_sighup_swaps_in_the_next_world(world_dir: Path, run_peer: Any) -> None:
    # A reused pod: the host writes the next case's world over the old one and sends SIGHUP.
    spec_path = world_dir / "world.json"
    spec_path.write_text(world().to_json())
    peer = run_peer(spec_path)
    first = peer.wait_event("ready")
    assert first["generation"] == 0
    old_port = first["endpoints"][0]["port"]
    swapped = WorldSpec(
        dns=DnsSpec(
            "127.0.0.1",
            0,
            (Record("example.net", "MX", "10 mx.example.net"), Record("mx.example.net", "A", "127.0.0.3")),
        ),
        addresses=("127.0.0.3",),
        servers=(ServerSpec("mx.example.net", "127.0.0.3", 0, None, None),),
    )
    spec_path.write_text(swapped.to_json())
    peer.proc.send_signal(signal.SIGHUP)
    second = peer.wait_event("ready")
    assert second["generation"] == 1
    (endpoint,) = second["endpoints"]
    reply = DNSRecord.parse(DNSRecord.question("example.net", "MX").send("127.0.0.1", second["dns"]["port"], timeout=2))
    assert [rr.rdata.toZone() for rr in reply.rr] == ["10 mx.example.net."]
    old = DNSRecord.parse(DNSRecord.question("fastmail.fm", "MX").send("127.0.0.1", second["dns"]["port"], timeout=2))
    assert old.header.rcode == RCODE.NXDOMAIN  # the old world is gone
    with smtplib.SMTP("127.0.0.3", endpoint["port"], timeout=5.0) as client:
        assert client.ehlo()[0] == 250
    with pytest.raises(OSError):  # negative control: the old world's server no longer listens
        smtplib.SMTP("127.0.0.2", old_port, timeout=2.0).close()
    peer.proc.send_signal(signal.SIGTERM)
    code, _, stderr = peer.finish()
    assert code == 0, stderr


def test_the_ready_name_is_answered_but_not_reported_as_a_query_of_the_world() -> None:
    from harness._world_spec import DnsSpec
    from harness.dns import Record
    from harness.peer import _without, ready_name

    name = ready_name(3)
    assert name == "g3.ready.mxharness.invalid"  # RFC 6761 §6.4: .invalid never resolves for real
    zone = DnsSpec(records=(Record("example.com", "MX", "10 mx.example.com"),)).zone(
        extra=(Record(name, "A", "127.0.0.1"),)
    )
    assert zone.answer(name + ".", "A").rcode == "NOERROR"
    seen: list[object] = []
    on_query = _without(name, seen.append)
    on_query({"event": "dns", "qname": name + ".", "qtype": "A"})
    on_query({"event": "dns", "qname": "example.com.", "qtype": "MX"})
    assert seen == [{"event": "dns", "qname": "example.com.", "qtype": "MX"}]


def test_postfix_starts_on_the_worlds_generation() -> None:
    from harness.postfix import start_postfix

    script = start_postfix(7)
    # The world's generation and daemon_directory ($dir of READ_PATHS), one write to start-postfix's FIFO.
    assert script == 'echo "7 $dir" > /run/mxharness/go'
    start = (Path(__file__).resolve().parents[2] / "containers/postfix/start-postfix").read_text()
    assert "mkfifo -m 600 /run/mxharness/go" in start
    assert "read -r generation daemon_directory < /run/mxharness/go" in start
    assert 'getent hosts "g$generation.ready.mxharness.invalid"' in start  # the name ready_name() gives


def test_a_host_with_an_address_and_no_server_refuses_connections(tmp_path: Path, run_peer: Any) -> None:
    # "Connection refused needs no key" (scenario-format.md): an address in dns without a servers entry is bound
    # with nothing listening. The world is built from a scenario as for the pod; only the ports differ (0: free
    # ones, as the tests run unprivileged) and --no-bind leaves 127.0.0.0/8, already local, as it is.
    from harness.scenario import scenario_from_dict
    from harness.world import build_world

    scenario = scenario_from_dict(
        {
            "name": "refused",
            "dns": {
                "example.net": {"MX": ["10 down.example.net", "20 mx.example.net"]},
                "down.example.net": {"A": "127.0.0.4"},  # no server: connection refused
                "mx.example.net": {"A": "127.0.0.2"},
            },
            "servers": {"mx.example.net": {}},
            "cases": [{"name": "sends", "send": [{"to": "user@example.net"}]}],
        }
    )
    spec = json.loads(build_world(scenario).peer_files()["/world/world.json"])
    assert spec["addresses"] == ["127.0.0.2", "127.0.0.4"]  # both bound in the pod ...
    assert [(s["host"], s["address"]) for s in spec["servers"]] == [("mx.example.net", "127.0.0.2")]  # ... one served
    spec["dns"].update(listen="127.0.0.1", port=0)
    for server in spec["servers"]:
        server["port"] = 0
    spec_path = tmp_path / "world.json"
    spec_path.write_text(json.dumps(spec))
    peer = run_peer(spec_path)
    ready = peer.wait_event("ready")
    assert ready["addresses"] == ["127.0.0.2", "127.0.0.4"]
    (endpoint,) = ready["endpoints"]
    assert endpoint["address"] == "127.0.0.2"
    reply = DNSRecord.parse(
        DNSRecord.question("down.example.net", "A").send("127.0.0.1", ready["dns"]["port"], timeout=2.0)
    )
    assert [rr.rdata.toZone() for rr in reply.rr] == ["127.0.0.4"]  # the name resolves ...

    with pytest.raises(ConnectionRefusedError):  # ... and its address refuses, as Postfix logs it
        smtplib.SMTP("127.0.0.4", endpoint["port"], timeout=5.0)
    with smtplib.SMTP("127.0.0.2", endpoint["port"], timeout=5.0) as client:  # control: the served address, same port
        assert client.ehlo()[0] == 250
    peer.proc.send_signal(signal.SIGTERM)
    code, events, stderr = peer.finish()
    assert code == 0, stderr
    assert [e["server"] for e in events if e["event"] == "session"] == ["mx.example.net"]  # the refusal left no session
