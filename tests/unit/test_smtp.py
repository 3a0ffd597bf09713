"""Fake SMTP endpoints: real smtplib sessions with STARTTLS on loopback, certificates from trustme."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from harness.smtp import SmtpController, SmtpEndpoint, SmtpServerError

MX = "mx1.example.com"
MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.com\r\nMessage-ID: <abc.123@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    leaf = ca.issue_cert(MX)
    folder = tmp_path_factory.mktemp("tls")
    chain, key = folder / "mx1.pem", folder / "mx1.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(chain), str(key)


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def server(cert_files: tuple[str, str], events: list[dict[str, Any]]) -> Iterator[SmtpController]:
    chain, key = cert_files
    endpoint = SmtpEndpoint(MX, "127.0.0.1", 0, cert_chain_file=chain, key_file=key)
    with SmtpController([endpoint], on_event=events.append) as controller:
        yield controller


@pytest.fixture
def plain_server(events: list[dict[str, Any]]) -> Iterator[SmtpController]:
    with SmtpController([SmtpEndpoint("plain.example", "127.0.0.1", 0)], on_event=events.append) as controller:
        yield controller


def connect(controller: SmtpController, *, server_hostname: str | None = MX, index: int = 0) -> smtplib.SMTP:
    address = controller.runner.endpoints[index].address
    client = smtplib.SMTP(address, controller.ports[index], local_hostname="client.example", timeout=5.0)
    # smtplib sends its connect host as SNI and checks the certificate against it; a real MX client such as
    # Postfix uses the MX name instead, so stand in for it here.
    client._host = server_hostname  # type: ignore[assignment]
    return client


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def sessions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "session"]


def settle(controller: SmtpController, count: int = 1) -> list[dict[str, Any]]:
    """Wait for ``count`` summaries, then a little longer so that a duplicate would show up too."""
    controller.recorder.wait_sessions(count)
    time.sleep(0.05)
    return controller.recorder.sessions


def test_starttls_with_a_trusted_certificate_records_tls_and_sni(
    server: SmtpController, ca: trustme.CA, events: list[dict[str, Any]]
) -> None:
    client = connect(server)
    code, greeting = client.ehlo()
    assert code == 250 and greeting.startswith(MX.encode())
    assert client.has_extn("starttls")
    client.starttls(context=trusting(ca))
    client.ehlo()
    client.quit()
    (summary,) = settle(server)
    assert summary["starttls"] is True
    assert summary["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert summary["tls"]["cipher"]
    assert summary["tls"]["sni"] == MX
    assert summary["tls_error"] is None
    assert summary["ehlo"] == "client.example"
    assert summary["server"] == MX and summary["local_address"] == "127.0.0.1"
    assert summary["local_port"] == server.ports[0]
    assert [e["stage"] for e in events if e["event"] == "smtp"] == [
        "connect", "greeting", "ehlo", "starttls", "tls", "ehlo", "quit", "close",
    ]  # fmt: skip
    assert sessions(events) == [summary]


def test_starttls_against_an_unrelated_ca_fails_verification(server: SmtpController) -> None:
    client = connect(server)
    client.ehlo()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        client.starttls(context=trusting(trustme.CA()))
    client.close()
    (summary,) = settle(server)
    assert summary["starttls"] is True and summary["tls"] is None
    assert summary["tls_error"]


def test_starttls_with_the_wrong_server_hostname_fails_verification(server: SmtpController, ca: trustme.CA) -> None:
    client = connect(server, server_hostname="mx2.example.com")
    client.ehlo()
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        client.starttls(context=trusting(ca))
    client.close()
    (summary,) = settle(server)
    assert summary["tls"] is None


def test_sni_is_none_when_the_client_sends_none(server: SmtpController) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = connect(server, server_hostname=None)
    client.ehlo()
    client.starttls(context=context)
    client.quit()
    (summary,) = settle(server)
    assert summary["tls"] is not None and summary["tls"]["sni"] is None


def test_endpoint_without_certificate_does_not_offer_starttls(plain_server: SmtpController) -> None:
    client = connect(plain_server)
    client.ehlo()
    assert not client.has_extn("starttls")
    assert client.docmd("STARTTLS")[0] in (454, 502)
    client.quit()
    assert settle(plain_server)[0]["starttls"] is False


def test_endpoint_with_certificate_offers_starttls(server: SmtpController) -> None:
    client = connect(server)
    client.ehlo()
    assert client.has_extn("starttls")
    client.quit()


def test_auth_is_not_offered_after_tls(server: SmtpController, ca: trustme.CA) -> None:
    client = connect(server)
    client.starttls(context=trusting(ca))
    client.ehlo()
    assert not client.has_extn("auth")
    assert client.has_extn("8bitmime")  # control: the other extensions are still listed
    client.quit()


def test_data_is_accepted_and_the_message_id_recorded(
    server: SmtpController, ca: trustme.CA, events: list[dict[str, Any]]
) -> None:
    client = connect(server)
    client.starttls(context=trusting(ca))
    client.ehlo()
    assert client.mail("a@example.org")[0] == 250
    assert client.rcpt("b@example.com")[0] == 250
    code, reply = client.data(MESSAGE)
    client.quit()
    assert code == 250
    match = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-F]+)", reply)
    assert match
    (summary,) = settle(server)
    assert summary["mail_from"] == "a@example.org" and summary["rcpt_to"] == ["b@example.com"]
    (message,) = summary["messages"]
    assert message["message_id"] == "abc.123@example.org"
    assert message["size"] == len(MESSAGE)
    assert message["accepted"] is True and message["queue_id"] == match.group(1).decode()
    (data_event,) = [e for e in events if e.get("stage") == "data"]
    assert data_event["message_id"] == "abc.123@example.org"


def test_message_without_message_id_is_recorded_with_none(server: SmtpController) -> None:
    client = connect(server)
    client.sendmail("a@example.org", ["b@example.com"], b"Subject: no id\r\n\r\nbody\r\n")
    client.quit()
    (summary,) = settle(server)
    assert summary["messages"][0]["message_id"] is None


def test_client_closing_right_after_the_starttls_reply_emits_one_summary(
    server: SmtpController, events: list[dict[str, Any]]
) -> None:
    client = connect(server)
    client.ehlo()
    assert client.docmd("STARTTLS")[0] == 220
    client.close()  # no handshake at all
    (summary,) = settle(server)
    assert summary["starttls"] is True and summary["tls"] is None
    assert summary["tls_error"] == "ConnectionResetError"
    assert len(sessions(events)) == 1


def test_stop_while_the_client_stalls_in_the_handshake_emits_its_summary(
    cert_files: tuple[str, str], events: list[dict[str, Any]]
) -> None:
    chain, key = cert_files
    controller = SmtpController(
        [SmtpEndpoint(MX, "127.0.0.1", 0, cert_chain_file=chain, key_file=key)], on_event=events.append
    )
    controller.start()
    client = connect(controller)
    client.ehlo()
    assert client.docmd("STARTTLS")[0] == 220  # and never send a ClientHello
    controller.stop()
    client.close()
    (summary,) = sessions(events)
    assert summary["tls_error"] == "connection closed during the TLS handshake"


@pytest.mark.parametrize("ending", ["quit", "close"])
def test_client_aborting_after_the_handshake_emits_one_summary(
    server: SmtpController, ca: trustme.CA, events: list[dict[str, Any]], ending: str
) -> None:
    # Postfix does this when a certificate fails its checks: handshake done, then QUIT or a plain close.
    client = connect(server)
    client.ehlo()
    client.starttls(context=trusting(ca))
    if ending == "quit":
        client.quit()
    else:
        client.close()
    (summary,) = settle(server)
    assert summary["tls"] is not None and summary["tls"]["sni"] == MX
    assert summary["messages"] == []
    assert len(sessions(events)) == 1


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stop_with_a_connected_client_still_emits_its_summary(
    cert_files: tuple[str, str], ca: trustme.CA, events: list[dict[str, Any]], tls: bool
) -> None:
    chain, key = cert_files if tls else (None, None)
    endpoint = SmtpEndpoint(MX, "127.0.0.1", 0, cert_chain_file=chain, key_file=key)
    controller = SmtpController([endpoint], on_event=events.append)
    controller.start()
    client = connect(controller)
    if tls:
        client.starttls(context=trusting(ca))
    client.ehlo()
    controller.stop()
    client.close()
    (summary,) = sessions(events)
    assert summary["ehlo"] == "client.example"
    assert (summary["tls"] is not None) is tls


def test_many_endpoints_are_served_by_one_controller(events: list[dict[str, Any]]) -> None:
    endpoints = [SmtpEndpoint("a.example", "127.0.0.2", 0), SmtpEndpoint("b.example", "127.0.0.3", 0)]
    with SmtpController(endpoints, on_event=events.append) as controller:
        for index, name in enumerate(["a.example", "b.example"]):
            client = connect(controller, index=index)
            assert client.ehlo()[1].startswith(name.encode())
            client.quit()
        summaries = settle(controller, 2)
    assert sorted((s["server"], s["local_address"]) for s in summaries) == [
        ("a.example", "127.0.0.2"),
        ("b.example", "127.0.0.3"),
    ]


def test_greeting_names_the_endpoint_host(plain_server: SmtpController) -> None:
    with socket.create_connection(("127.0.0.1", plain_server.ports[0]), timeout=5.0) as sock:
        greeting = sock.makefile("rb").readline()
    assert greeting == b"220 plain.example ESMTP\r\n"


def test_missing_certificate_fails_start_with_a_hint(tmp_path: Path) -> None:
    endpoint = SmtpEndpoint(MX, "127.0.0.1", 0, cert_chain_file=str(tmp_path / "no.pem"), key_file="no.key")
    with pytest.raises(SmtpServerError, match=r"mx1\.example\.com: cannot load TLS certificate .*Hint:"):
        with SmtpController([endpoint]):
            pass


def test_port_in_use_fails_start_with_a_hint(plain_server: SmtpController) -> None:
    taken = SmtpEndpoint("dup.example", "127.0.0.1", plain_server.ports[0])
    with pytest.raises(SmtpServerError, match=rf"127\.0\.0\.1:{plain_server.ports[0]}: .*Hint:"):
        with SmtpController([SmtpEndpoint("first.example", "127.0.0.1", 0), taken]):
            pass


def test_a_failing_event_callback_is_raised_at_stop() -> None:
    def broken(_event: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    controller = SmtpController([SmtpEndpoint("plain.example", "127.0.0.1", 0)], on_event=broken)
    controller.start()
    try:
        client = connect(controller)
        client.ehlo()  # the session still works
        client.quit()
        controller.recorder.wait_sessions(1)
    finally:
        with pytest.raises(SmtpServerError, match="boom"):
            controller.stop()


@pytest.mark.parametrize(("chain", "key"), [("a.pem", None), (None, "a.key")])
def test_certificate_and_key_go_together(chain: str | None, key: str | None) -> None:
    with pytest.raises(SmtpServerError, match="go together"):
        SmtpEndpoint(MX, "127.0.0.1", 25, cert_chain_file=chain, key_file=key)
