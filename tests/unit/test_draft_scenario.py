"""Scenarios drafted by `mxharness draft` (harness.draft): what is taken from the log, posttls-finger output, main.cf
and the policy table, what is guessed and said so, and that every draft loads as a scenario.

The outcomes the drafts expect on the default release (3.7.11) follow postfix-tls-notes.md; the Docker test
tests/integration/test_draft.py runs the fixtures' drafts on real Postfix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from harness.draft import Draft, draft_scenario
from harness.errors import ScenarioError
from harness.pki import Pki
from harness.scenario import load_scenario

DATA = Path(__file__).parent.parent / "data"
DRAFT = Path(__file__).parent / "data" / "draft"
SEED_LOG = DATA / "seed-smtp-tls.log"
SEED_POLICY = DRAFT / "seed-tls_policy"
SEED_MAIN_CF = DRAFT / "seed-main.cf"
SEED_SANS = [
    "*.messagingengine.com",
    "messagingengine.com",
    "mail.messagingengine.com",
    "dav.messagingengine.com",
    "caldav.messagingengine.com",
    "carddav.messagingengine.com",
]
PREFIX = "Nov 30 10:53:17 mail postfix/smtp[4711]: "


def _seed(**kwargs: Any) -> Draft:
    return draft_scenario([SEED_LOG], policy=SEED_POLICY, main_cf=SEED_MAIN_CF, **kwargs)


def _log(tmp_path: Path, *messages: str, name: str = "report.log") -> Path:
    path = tmp_path / name
    path.write_text("".join(PREFIX + message + "\n" for message in messages))
    return path


def _send(draft: Draft) -> list[dict[str, Any]]:
    send: list[dict[str, Any]] = draft.data["cases"][0]["send"]
    return send


def _comments(draft: Draft) -> str:
    """The draft's comments as one line of text (the YAML writer wraps them)."""
    lines = [line.strip() for line in draft.text.splitlines() if line.strip().startswith("#")]
    return " ".join(line.lstrip("# ").strip() for line in lines)


def _loads(draft: Draft, tmp_path: Path) -> dict[str, Any]:
    """Write the draft, load it as `mxharness run` would, and return what the YAML says."""
    path = tmp_path / f"{draft.name}.yaml"
    path.write_text(draft.text)
    load_scenario(path)
    data: dict[str, Any] = YAML(typ="safe").load(draft.text)
    return data


# --- the seed report -----------------------------------------------------------------------------------------


def test_seed_certificate_has_the_six_sans_and_the_digicert_chain(tmp_path: Path) -> None:
    data = _loads(_seed(), tmp_path)
    (cert,) = data["pki"]["certs"].values()
    assert cert["san"] == SEED_SANS
    assert cert["subject"] == "/C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com"
    inter = data["pki"]["cas"][cert["issuer"]]
    root = data["pki"]["cas"][inter["issuer"]]
    assert inter["subject"] == "/C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert SHA2 High Assurance Server CA"
    assert root["subject"] == "/C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert High Assurance EV Root CA"
    assert "issuer" not in root
    assert data["postfix"]["trust"] == [inter["issuer"]]
    assert cert["key"] == "rsa2048"  # ECDHE-RSA-… needs an RSA key


def test_seed_world_and_expectation(tmp_path: Path) -> None:
    draft = _seed()
    data = _loads(draft, tmp_path)
    assert data["dns"]["fastmail.fm"] == {"MX": ["10 in1-smtp.messagingengine.com"]}
    assert data["dns"]["in1-smtp.messagingengine.com"] == {"A": ["66.111.4.74"]}
    server = data["servers"]["in1-smtp.messagingengine.com"]
    assert server["tls"] == {"max_version": "TLSv1.2", "ciphers": "ECDHE-RSA-AES256-GCM-SHA384"}
    (message,) = data["cases"][0]["send"]
    assert message == {
        "to": "user@fastmail.fm",
        "expect": {
            "status": "deferred",
            "dsn": "4.7.5",
            "reason": "Server certificate not verified",
            "tls": "Untrusted",  # 3.7.11's word for the failure the 2.11 log calls Trusted
            "relay": "in1-smtp.messagingengine.com",
        },
    }
    comments = _comments(draft)
    assert "the log says 'Trusted TLS connection established'" in comments
    assert "Postfix 3.7.11 logs Untrusted for the same failure" in comments
    assert "MX preference of in1-smtp.messagingengine.com for fastmail.fm not in the log: assumed 10" in comments
    assert draft.problems == () and draft.warnings == ()


def test_seed_configuration_keeps_the_client_side_and_the_policy_table(tmp_path: Path) -> None:
    draft = _seed()
    postfix = _loads(draft, tmp_path)["postfix"]
    main_cf = postfix["main.cf"]
    assert main_cf["smtp_tls_policy_maps"] == "hash:/etc/postfix/tls_policy"
    assert main_cf["smtp_tls_CApath"] == "/etc/postfix/rootcas/"
    assert main_cf["smtp_tls_security_level"] == "may"
    for left_out in ("smtp_tls_session_cache_database", "content_filter", "smtpd_tls_cert_file", "virtual_transport"):
        assert left_out not in main_cf
    assert "smtp_tls_session_cache_database: a resumed TLS session hides the verification result" in _comments(draft)
    assert postfix["maps"]["/etc/postfix/tls_policy"] == SEED_POLICY.read_text()


def test_seed_without_configuration_guesses_secure_for_the_next_hop(tmp_path: Path) -> None:
    draft = draft_scenario([SEED_LOG])
    data = _loads(draft, tmp_path)
    assert data["postfix"]["main.cf"] == {"smtp_tls_policy_maps": "texthash:/etc/postfix/tls_policy"}
    policy = data["postfix"]["maps"]["/etc/postfix/tls_policy"]
    assert "fastmail.fm secure\n" in policy
    assert "# guessed: the certificate names in1-smtp.messagingengine.com but not fastmail.fm" in policy
    assert any(
        g.startswith("security level for fastmail.fm not in the configuration given: secure") for g in draft.guesses
    )


def test_a_verify_policy_would_not_explain_the_deferral_and_the_draft_says_so(tmp_path: Path) -> None:
    policy = tmp_path / "tls_policy"
    policy.write_text("fastmail.fm may\n")
    draft = draft_scenario([SEED_LOG], policy=policy)
    (warning,) = draft.warnings
    assert "sets 'may' for fastmail.fm, yet the log shows a failed certificate check" in warning
    assert f"Warnings: - {warning}" in _comments(draft)


def test_the_draft_names_its_inputs_and_counts_the_lines() -> None:
    draft = _seed()
    assert draft.text.startswith("# Drafted by `mxharness draft` from ")
    text = _comments(draft)
    assert "Read 32 line(s): 32 Postfix log line(s), 0 posttls-finger line(s)" in text
    assert "0 not understood (skipped)" in text


# --- journald, Postfix 3.x wording, several queue ids, personal data ------------------------------------------


def test_journald_log_with_two_destinations(tmp_path: Path) -> None:
    draft = draft_scenario([DRAFT / "journald-short-iso.log"])
    data = _loads(draft, tmp_path)
    assert data["dns"]["acme-widgets.com"] == {"MX": ["10 mx1.mailprotect.net", "20 mx2.mailprotect.net"]}
    assert data["servers"]["mx1.mailprotect.net"] == data["servers"]["mx2.mailprotect.net"]
    cert = data["pki"]["certs"][data["servers"]["mx1.mailprotect.net"]["cert"]]
    assert cert["san"] == ["mx1.mailprotect.net", "mx2.mailprotect.net"] and cert["key"] == "ec256"
    deferred = {"status": "deferred", "dsn": "4.7.5", "reason": "Server certificate not verified"}
    assert [m["expect"] for m in _send(draft)] == [
        deferred | {"tls": "Untrusted", "relay": "mx2.mailprotect.net"},
        deferred | {"tls": "Untrusted", "relay": "mx2.mailprotect.net"},
        {"status": "sent", "dsn": "2.0.0", "tls": "Verified", "relay": "mx.partner-logistics.de"},
    ]
    policy = data["postfix"]["maps"]["/etc/postfix/tls_policy"]
    assert "acme-widgets.com secure\n" in policy and "partner-logistics.de verify\n" in policy


def test_journald_log_content_filter_hop_and_placeholders() -> None:
    draft = draft_scenario([DRAFT / "journald-short-iso.log"])
    assert [m["to"] for m in _send(draft)] == [
        "user@acme-widgets.com",
        "user2@acme-widgets.com",
        "user3@partner-logistics.de",
    ]
    for personal in ("bob.smith", "Carol", "carol", "d.mueller", "alice.jones"):
        assert personal not in draft.text
    assert "relay=127.0.0.1[127.0.0.1]:10024: not an SMTP delivery to another server" in _comments(draft)


def test_keep_addresses_keeps_the_local_parts() -> None:
    draft = draft_scenario([DRAFT / "journald-short-iso.log"], keep_addresses=True)
    assert [m["to"] for m in _send(draft)][:2] == ["bob.smith@acme-widgets.com", "Carol@acme-widgets.com"]
    assert "placeholders" not in draft.text


def test_untrusted_issuer_on_postfix_3_leaves_the_root_untrusted(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        "certificate verification failed for mx.corp.example[192.0.2.30]:25: untrusted issuer "
        "/C=DE/O=Corp/CN=Corp Internal Root",
        "Untrusted TLS connection established to mx.corp.example[192.0.2.30]:25: TLSv1.3 with cipher "
        "TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (4096 bits) "
        "server-digest SHA256",
        "8E1F2A3B4C: to=<jane@corp.example>, relay=mx.corp.example[192.0.2.30]:25, delay=0.3, "
        "delays=0.01/0/0.3/0, dsn=4.7.5, status=deferred (Server certificate not verified)",
    )
    draft = draft_scenario([log])
    data = _loads(draft, tmp_path)
    assert data["postfix"]["trust"] == []
    (cert,) = data["pki"]["certs"].values()
    assert data["pki"]["cas"][cert["issuer"]] == {"subject": "/C=DE/O=Corp/CN=Corp Internal Root"}
    assert cert["key"] == "rsa4096"  # from server-signature RSA-PSS (4096 bits)
    assert _send(draft)[0]["expect"]["tls"] == "Untrusted"
    assert "no chain in the log was trusted: postfix.trust is empty" in draft.guesses


def test_expired_certificate_is_drafted_expired(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        "server certificate verification failed for mx.old.example[192.0.2.31]:25: certificate has expired",
        "Untrusted TLS connection established to mx.old.example[192.0.2.31]:25: TLSv1.2 with cipher "
        "ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)",
        "0A1B2C3D4E: to=<x@old.example>, relay=mx.old.example[192.0.2.31]:25, delay=0.3, "
        "delays=0.01/0/0.3/0, dsn=4.7.5, status=deferred (Server certificate not verified)",
    )
    data = _loads(draft_scenario([log]), tmp_path)
    (cert,) = data["pki"]["certs"].values()
    assert cert["not_after"] == "-1d"
    assert data["postfix"]["trust"] == [cert["issuer"]]  # the chain itself was trusted


def test_server_reply_in_the_reason_becomes_the_servers_reply(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        "Verified TLS connection established to mx.shop.example[192.0.2.40]:25: TLSv1.3 with cipher "
        "TLS_AES_256_GCM_SHA384 (256/256 bits)",
        "5F6E7D8C9B: to=<John.Doe@shop.example>, relay=mx.shop.example[192.0.2.40]:25, delay=0.5, "
        "delays=0.1/0/0.2/0.2, dsn=5.1.1, status=bounced (host mx.shop.example[192.0.2.40] said: 550 5.1.1 "
        "<John.Doe@shop.example>: Recipient address rejected: User unknown (in reply to RCPT TO command))",
    )
    draft = draft_scenario([log])
    data = _loads(draft, tmp_path)
    reply = "550 5.1.1 <user@shop.example>: Recipient address rejected: User unknown"
    assert data["servers"]["mx.shop.example"]["replies"] == {"rcpt": {"user@shop.example": reply}}
    (message,) = _send(draft)
    assert message["to"] == "user@shop.example"
    assert message["expect"]["status"] == "bounced"
    assert message["expect"]["reason"] == (
        f"host mx.shop.example[192.0.2.40] said: {reply} (in reply to RCPT TO command)"
    )
    assert "John.Doe" not in draft.text


def test_refused_connection_and_nxdomain(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        "connect to mx1.refuse.example[192.0.2.50]:25: Connection refused",
        "1A2B3C4D5E: to=<a@refuse.example>, relay=none, delay=0.1, delays=0.1/0/0/0, dsn=4.4.1, "
        "status=deferred (connect to mx1.refuse.example[192.0.2.50]:25: Connection refused)",
        "2B3C4D5E6F: to=<b@gone.example>, relay=none, delay=0.1, delays=0.1/0/0/0, dsn=5.4.4, status=bounced "
        "(Host or domain name not found. Name service error for name=gone.example type=MX: Host not found)",
    )
    draft = draft_scenario([log])
    data = _loads(draft, tmp_path)
    assert "mx1.refuse.example" not in data.get("servers", {})  # nothing listens: connection refused
    assert data["dns"]["mx1.refuse.example"] == {"A": ["192.0.2.50"]}
    assert "gone.example" not in data["dns"]  # NXDOMAIN
    first, second = (m["expect"] for m in _send(draft))
    assert first["reason"] == "connect to mx1.refuse.example[192.0.2.50]:25: Connection refused"
    assert second == {
        "status": "bounced",
        "dsn": "5.4.4",
        "reason": "Host or domain name not found. Name service error for name=gone.example",  # 3.7 names AAAA
    }


def test_logged_fingerprint_in_the_policy_becomes_a_placeholder(tmp_path: Path) -> None:
    fingerprint = "D8:F5:7E:43:A8:DA:29:22:6B:7E:90:A6:31:86:C8:CD"  # the seed log's (md5, Postfix 2.11)
    policy = tmp_path / "tls_policy"
    policy.write_text(f"fastmail.fm fingerprint match={fingerprint.lower()}\n")
    draft = draft_scenario([SEED_LOG], policy=policy)
    data = _loads(draft, tmp_path)
    assert data["postfix"]["maps"]["/etc/postfix/tls_policy"] == (
        "fastmail.fm fingerprint match={{ fingerprint messagingengine-com md5 }}\n"
    )
    assert data["postfix"]["main.cf"]["smtp_tls_fingerprint_digest"] == "md5"


def test_relayhost_of_main_cf_is_the_next_hop(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("relayhost = [smtp.provider.example]:587\nsmtp_tls_security_level = encrypt\n")
    log = _log(
        tmp_path,
        "Trusted TLS connection established to smtp.provider.example[192.0.2.60]:587: TLSv1.3 with cipher "
        "TLS_AES_128_GCM_SHA256 (128/128 bits)",
        "3C4D5E6F70: to=<ann@customer.example>, relay=smtp.provider.example[192.0.2.60]:587, delay=0.4, "
        "delays=0.1/0/0.2/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABC)",
    )
    draft = draft_scenario([log], main_cf=main_cf)
    data = _loads(draft, tmp_path)
    assert "smtp.provider.example" in data["dns"] and "customer.example" not in data["dns"]
    assert data["servers"]["smtp.provider.example"]["ports"] == [587]
    assert data["postfix"]["main.cf"]["relayhost"] == "[smtp.provider.example]:587"
    assert _send(draft)[0]["expect"] == {
        "status": "sent",
        "dsn": "2.0.0",
        "tls": "Trusted",
        "relay": "smtp.provider.example",
    }


# --- posttls-finger ------------------------------------------------------------------------------------------


def test_posttls_finger_secure_with_the_mx_list_of_host(tmp_path: Path) -> None:
    draft = draft_scenario([DRAFT / "finger-secure.txt"])
    data = _loads(draft, tmp_path)
    assert data["dns"]["fastmail.fm"] == {"MX": ["10 in1-smtp.messagingengine.com", "20 in2-smtp.messagingengine.com"]}
    assert data["dns"]["in2-smtp.messagingengine.com"] == {"A": ["auto"]}
    assert data["servers"]["in2-smtp.messagingengine.com"] == data["servers"]["in1-smtp.messagingengine.com"]
    assert "fastmail.fm secure\n" in data["postfix"]["maps"]["/etc/postfix/tls_policy"]
    (cert,) = data["pki"]["certs"].values()
    assert cert["san"] == ["*.messagingengine.com"]  # the CommonName: 3.x logs no subjectAltName lines
    assert _send(draft) == [
        {
            "to": "user@fastmail.fm",
            "expect": {
                "status": "deferred",
                "dsn": "4.7.5",
                "reason": "Server certificate not verified",
                "tls": "Untrusted",
            },
        }
    ]
    assert "predicted: posttls-finger shows no delivery" in _comments(draft)


def test_posttls_finger_chat_without_starttls_at_encrypt(tmp_path: Path) -> None:
    path = tmp_path / "finger.txt"
    path.write_text(
        "$ posttls-finger -l encrypt plain.example\n"
        "posttls-finger: Connected to mx.plain.example[192.0.2.70]:25\n"
        "posttls-finger: < 220 mx.plain.example ESMTP\n"
        "posttls-finger: > EHLO mail.example.org\n"
        "posttls-finger: < 250-mx.plain.example\n"
        "posttls-finger: < 250-PIPELINING\n"
        "posttls-finger: < 250 8BITMIME\n"
        "posttls-finger: > QUIT\n"
    )
    draft = draft_scenario([path])
    data = _loads(draft, tmp_path)
    assert data["servers"] == {"mx.plain.example": {}}
    assert _send(draft)[0]["expect"] == {
        "status": "deferred",
        "dsn": "4.7.4",
        "reason": "TLS is required, but was not offered by host",
    }


def test_posttls_finger_chain_print_gives_names_key_and_dates(tmp_path: Path) -> None:
    pki = Pki()
    pki.add_ca("root", subject="/O=Example/CN=Example Root", key="ec256")
    pki.add_ca("inter", issuer="root", subject="/O=Example/CN=Example Issuing CA", key="ec256")
    leaf = pki.add_cert(
        "mx",
        issuer="inter",
        subject="/CN=mx.example.com",
        san=["mx.example.com", "example.com"],
        key="ec384",
        not_after="+30d",
    )
    path = tmp_path / "finger.txt"
    path.write_text(
        "$ posttls-finger -c -C -l verify example.com\n"
        "posttls-finger: Verified TLS connection established to mx.example.com[192.0.2.80]:25: TLSv1.3 with "
        "cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        "---\nCertificate chain\n"
        " 0 subject: /CN=mx.example.com\n    issuer: /O=Example/CN=Example Issuing CA\n"
        f"{leaf.cert_pem.decode()}"
        " 1 subject: /O=Example/CN=Example Issuing CA\n    issuer: /O=Example/CN=Example Root\n"
        f"{pki.ca('inter').cert_pem.decode()}"
    )
    draft = draft_scenario([path])
    data = _loads(draft, tmp_path)
    (cert,) = data["pki"]["certs"].values()
    assert cert["san"] == ["mx.example.com", "example.com"] and cert["key"] == "ec384"
    assert cert["not_after"] == leaf.certificate.not_valid_after_utc.isoformat()
    inter = data["pki"]["cas"][cert["issuer"]]
    assert inter["subject"] == "/O=Example/CN=Example Issuing CA"
    assert data["pki"]["cas"][inter["issuer"]] == {"subject": "/O=Example/CN=Example Root"}
    assert _send(draft)[0]["expect"] == {"status": "sent", "tls": "Verified"}


# --- input errors --------------------------------------------------------------------------------------------


def test_master_cf_given_as_main_cf_is_an_error_with_lines(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        draft_scenario([SEED_LOG], main_cf=DATA / "seed-master.cf")
    issue = caught.value.issues[0]
    assert issue.file.endswith("seed-master.cf") and issue.line == 1
    assert "not a main.cf line" in issue.message and "not master.cf" in issue.message


def test_unknown_level_in_the_policy_table_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    policy = tmp_path / "tls_policy"
    policy.write_text("# comment\nexample.com  secure\nfastmail.fm  secur ciphers=high\n  match=x\nlonely.example\n")
    with pytest.raises(ScenarioError) as caught:
        draft_scenario([SEED_LOG], policy=policy)
    first, second = caught.value.issues
    assert (first.line, second.line) == (3, 5)
    assert "unknown security level 'secur' (did you mean 'secure'?)" in first.message
    assert "entry 'lonely.example' has no security level" in second.message


def test_nothing_to_draft_from_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Hi, my mail to fastmail does not go out.\nAny idea?\n")
    with pytest.raises(ScenarioError) as caught:
        draft_scenario([path])
    assert "nothing to draft from: of 2 line(s)" in str(caught.value)
    assert "Hint:" in str(caught.value)


def test_a_bad_name_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="'Fast Mail' is not a scenario name"):
        _seed(name="Fast Mail")


# --- robustness ----------------------------------------------------------------------------------------------

_LINES = [
    *SEED_LOG.read_text().splitlines(),
    *(DRAFT / "journald-short-iso.log").read_text().splitlines(),
    *(DRAFT / "finger-secure.txt").read_text().splitlines(),
    "",
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(_LINES) | st.text(st.characters(blacklist_characters="\x00"), max_size=80),
        min_size=1,
        max_size=25,
    )
)
def test_any_paste_drafts_a_loadable_scenario_or_says_why_not(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("draft") / "any.log"
    path.write_text("\n".join(lines), errors="replace")
    try:
        draft = draft_scenario([path])
    except ScenarioError as exc:
        assert "nothing to draft from" in str(exc)
        return
    assert draft.problems == (), draft.text
