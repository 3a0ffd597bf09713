"""TLS settings of the fake SMTP servers, with real handshakes on loopback: versions and security level, ciphers,
SNI certificate selection, implicit TLS, handshake abort, client certificate request."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from _tls_files import write_leaf, write_self_signed_rsa

from harness.smtp import SmtpController, SmtpEndpoint, SmtpServerError, SniCertificate, TlsSettings

MX = "mx.example.com"
OTHER = "other.example.net"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def mx_files(ca: trustme.CA, folder: Path) -> tuple[str, str]:
    return write_leaf(ca, folder, MX)


@pytest.fixture(scope="module")
def other_files(ca: trustme.CA, folder: Path) -> tuple[str, str]:
    return write_leaf(ca, folder, OTHER)


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


class Served:
    """Starts controllers for endpoints built by the test and stops them at teardown."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.controllers: list[SmtpController] = []

    def __call__(self, endpoint: SmtpEndpoint) -> SmtpController:
        controller = SmtpController([endpoint], on_event=self.events.append)
        controller.start()
        self.controllers.append(controller)
        return controller


@pytest.fixture
def serve(events: list[dict[str, Any]]) -> Iterator[Served]:
    served = Served(events)
    yield served
    for controller in served.controllers:
        controller.stop()


def endpoint(files: tuple[str, str], **settings: Any) -> SmtpEndpoint:
    chain, key = files
    return SmtpEndpoint(MX, "127.0.0.1", 0, cert_chain_file=chain, key_file=key, **settings)


def client_context(ca: trustme.CA | None, *, legacy: bool = False) -> ssl.SSLContext:
    """A client context trusting ``ca`` (None: verifying nothing), not checking names (we connect by IP);
    ``legacy`` also allows TLSv1 at security level 0, as an old Postfix/OpenSSL would."""
    context = ssl.create_default_context()
    context.check_hostname = False
    if ca is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        ca.configure_trust(context)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # upstream Python's default; Debian's Python has none
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 is deprecated: that is the point
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def connect(controller: SmtpController, *, sni: str | None = MX) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", controller.ports[0], local_hostname="client.example", timeout=5.0)
    client._host = sni  # type: ignore[assignment]  # smtplib sends its _host as SNI; Postfix sends the MX name
    return client


def starttls(controller: SmtpController, context: ssl.SSLContext, *, sni: str | None = MX) -> smtplib.SMTP:
    client = connect(controller, sni=sni)
    client.ehlo()
    client.starttls(context=context)
    return client


def summary(controller: SmtpController) -> dict[str, Any]:
    controller.recorder.wait_sessions(1)
    time.sleep(0.05)  # a duplicate summary would show up now
    (only,) = controller.recorder.sessions
    return only


def peer_names(client: smtplib.SMTP) -> list[str]:
    cert = client.sock.getpeercert()  # type: ignore[union-attr]
    assert cert is not None
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]


# --- protocol versions, security level, ciphers ------------------------------------------------------------

TLSV1_ONLY = TlsSettings(min_version="TLSv1", max_version="TLSv1", seclevel=0)


def test_tlsv1_only_server_is_reached_by_a_client_allowing_tlsv1_at_seclevel_0(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA
) -> None:
    controller = serve(endpoint(mx_files, tls=TLSV1_ONLY))
    client = starttls(controller, client_context(ca, legacy=True))
    assert client.sock.version() == "TLSv1"  # type: ignore[union-attr]
    client.quit()
    assert summary(controller)["tls"]["version"] == "TLSv1"


def test_tlsv1_only_server_fails_a_default_client(serve: Served, mx_files: tuple[str, str], ca: trustme.CA) -> None:
    controller = serve(endpoint(mx_files, tls=TLSV1_ONLY))
    client = connect(controller)
    client.ehlo()
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):  # the server's alert, not an EOF
        client.starttls(context=client_context(ca))
    client.close()
    session = summary(controller)
    assert session["tls"] is None and "UNSUPPORTED_PROTOCOL" in session["tls_error"]


def test_without_min_version_the_floor_is_tls12_even_at_seclevel_0(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA
) -> None:
    # Debian's Python (the peer's) has no floor of its own: the server sets TLSv1.2 itself.
    controller = serve(endpoint(mx_files, tls=TlsSettings(seclevel=0)))
    context = client_context(ca, legacy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = ssl.TLSVersion.TLSv1
    client = connect(controller)
    client.ehlo()
    with pytest.raises(ssl.SSLError):
        client.starttls(context=context)
    client.close()
    assert summary(controller)["tls"] is None


@pytest.mark.parametrize(("max_version", "expected"), [("TLSv1.2", "TLSv1.2"), (None, "TLSv1.3")])
def test_max_version_caps_the_protocol(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA, max_version: str | None, expected: str
) -> None:
    controller = serve(endpoint(mx_files, tls=TlsSettings(max_version=max_version)))
    starttls(controller, client_context(ca)).quit()
    assert summary(controller)["tls"]["version"] == expected


def test_cipher_string_chooses_the_tls12_cipher(serve: Served, mx_files: tuple[str, str], ca: trustme.CA) -> None:
    only = "ECDHE-ECDSA-AES128-GCM-SHA256"  # trustme keys are ECDSA
    controller = serve(endpoint(mx_files, tls=TlsSettings(max_version="TLSv1.2", ciphers=only)))
    starttls(controller, client_context(ca)).quit()
    assert summary(controller)["tls"]["cipher"] == only


def test_a_cipher_string_that_selects_nothing_fails_start(serve: Served, mx_files: tuple[str, str]) -> None:
    with pytest.raises(SmtpServerError, match=r"mx\.example\.com: cipher string 'NO-SUCH-CIPHER' .*Hint:"):
        serve(endpoint(mx_files, tls=TlsSettings(ciphers="NO-SUCH-CIPHER")))


def test_rsa_1024_key_loads_only_at_a_low_security_level(serve: Served, folder: Path) -> None:
    weak = write_self_signed_rsa(folder, MX, bits=1024)
    with pytest.raises(SmtpServerError, match=r"(?i)key too small.*Hint:.*seclevel"):
        serve(endpoint(weak))
    controller = serve(endpoint(weak, tls=TlsSettings(seclevel=0)))
    client = starttls(controller, client_context(None, legacy=True))
    assert client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    client.quit()
    assert summary(controller)["tls"]["version"] == "TLSv1.3"


# --- SNI ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "presented"),
    [(OTHER, OTHER), ("OTHER.Example.NET", OTHER), (MX, MX), (None, MX), ("unknown.example.org", MX)],
    ids=["other", "other-any-case", "mx", "none", "unknown"],
)
def test_sni_selects_the_certificate_presented(
    serve: Served,
    mx_files: tuple[str, str],
    other_files: tuple[str, str],
    ca: trustme.CA,
    sent: str | None,
    presented: str,
) -> None:
    controller = serve(endpoint(mx_files, sni=(SniCertificate(OTHER, *other_files),)))
    client = starttls(controller, client_context(ca), sni=sent)
    assert peer_names(client) == [presented]
    client.quit()
    assert summary(controller)["tls"]["sni"] == sent


def test_without_sni_entries_every_client_gets_the_default(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA
) -> None:
    controller = serve(endpoint(mx_files))
    client = starttls(controller, client_context(ca), sni=OTHER)
    assert peer_names(client) == [MX]
    client.quit()


def test_sni_certificates_need_a_default_certificate(other_files: tuple[str, str]) -> None:
    with pytest.raises(SmtpServerError, match="sni need a certificate"):
        SmtpEndpoint(MX, "127.0.0.1", 0, sni=(SniCertificate(OTHER, *other_files),))


# --- implicit TLS (RFC 8314) ------------------------------------------------------------------------------------


def test_implicit_tls_speaks_smtp_inside_tls_without_starttls(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA, events: list[dict[str, Any]]
) -> None:
    controller = serve(endpoint(mx_files, implicit_tls=True))
    with smtplib.SMTP_SSL(
        "127.0.0.1", controller.ports[0], local_hostname="client.example", timeout=5.0, context=client_context(ca)
    ) as client:
        code, _ = client.ehlo()
        assert code == 250 and not client.has_extn("starttls")
        assert client.docmd("STARTTLS")[0] == 554  # TLS already active
        client.sendmail("a@example.org", ["b@example.com"], b"Message-ID: <i1@example.org>\r\n\r\nhi\r\n")
    session = summary(controller)
    assert session["starttls"] is False and session["tls"]["implicit"] is True
    assert session["tls"]["version"] == "TLSv1.3" and session["messages"][0]["accepted"] is True
    stages = [e["stage"] for e in events if e["event"] == "smtp"]
    assert stages[:4] == ["connect", "tls", "greeting", "ehlo"]


def test_implicit_tls_gives_a_plaintext_client_no_greeting(serve: Served, mx_files: tuple[str, str]) -> None:
    controller = serve(endpoint(mx_files, implicit_tls=True))
    with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP("127.0.0.1", controller.ports[0], timeout=0.3)
    session = summary(controller)
    assert session["tls"] is None and session["tls_error"]


def test_implicit_tls_handshake_failure_is_recorded_once(
    serve: Served, mx_files: tuple[str, str], events: list[dict[str, Any]]
) -> None:
    controller = serve(endpoint(mx_files, implicit_tls=True))
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL("127.0.0.1", controller.ports[0], timeout=5.0, context=client_context(trustme.CA()))
    session = summary(controller)
    assert session["tls"] is None and session["tls_error"]
    assert next(e["stage"] for e in events if e["event"] == "smtp") == "connect"


def test_stop_while_an_implicit_tls_client_stalls_emits_its_summary(
    mx_files: tuple[str, str], events: list[dict[str, Any]]
) -> None:
    controller = SmtpController([endpoint(mx_files, implicit_tls=True)], on_event=events.append)
    controller.start()
    with socket.create_connection(("127.0.0.1", controller.ports[0]), timeout=5.0):
        time.sleep(0.05)  # connected; never sends a ClientHello
        controller.stop()
    (summary,) = [e for e in events if e["event"] == "session"]
    assert summary["tls_error"] == "connection closed during the TLS handshake"


def test_implicit_tls_needs_a_certificate() -> None:
    with pytest.raises(SmtpServerError, match="implicit_tls need a certificate"):
        SmtpEndpoint(MX, "127.0.0.1", 0, implicit_tls=True)


def test_starttls_inside_tls_is_refused_and_the_session_goes_on(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA
) -> None:
    controller = serve(endpoint(mx_files))
    client = starttls(controller, client_context(ca))
    client.ehlo()
    assert client.docmd("STARTTLS")[0] == 554  # RFC 3207 §4.2: TLS already active
    assert client.sendmail("a@example.org", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n") == {}
    client.quit()
    assert summary(controller)["messages"][0]["accepted"] is True


def test_starttls_false_hides_starttls_and_refuses_it(serve: Served, mx_files: tuple[str, str], ca: trustme.CA) -> None:
    controller = serve(endpoint(mx_files, starttls=False))
    client = connect(controller)
    client.ehlo()
    assert not client.has_extn("starttls")
    assert client.docmd("STARTTLS")[0] == 502
    assert client.has_extn("8bitmime")  # control: the other extensions are still there
    client.quit()
    assert summary(controller)["starttls"] is False


# --- handshake fault --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("handshake", ["abort", "ok"])
def test_handshake_abort_closes_the_connection_after_the_220(
    serve: Served, mx_files: tuple[str, str], ca: trustme.CA, handshake: str
) -> None:
    controller = serve(endpoint(mx_files, tls=TlsSettings(handshake=handshake)))
    client = connect(controller)
    client.ehlo()
    if handshake == "abort":
        with pytest.raises((ssl.SSLError, OSError, smtplib.SMTPServerDisconnected)):
            client.starttls(context=client_context(ca))
        client.close()
    else:
        client.starttls(context=client_context(ca))  # control: the same server with handshake ok
        client.quit()
    session = summary(controller)
    assert session["starttls"] is True
    if handshake == "abort":
        assert session["tls"] is None and "tls.handshake: abort" in session["tls_error"]
    else:
        assert session["tls"] is not None and session["tls_error"] is None


def test_handshake_abort_with_implicit_tls_closes_at_connect(serve: Served, mx_files: tuple[str, str]) -> None:
    controller = serve(endpoint(mx_files, implicit_tls=True, tls=TlsSettings(handshake="abort")))
    with pytest.raises((ssl.SSLError, OSError, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP_SSL("127.0.0.1", controller.ports[0], timeout=5.0, context=client_context(None))
    assert "tls.handshake: abort" in summary(controller)["tls_error"]


# --- client certificates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_cert", "client_has_cert", "recorded"),
    [(True, True, True), (True, False, False), (False, True, False)],
    ids=["asked-and-sent", "asked-none-to-send", "not-asked"],
)
def test_client_certificate_is_asked_for_and_any_one_accepted(
    serve: Served,
    mx_files: tuple[str, str],
    ca: trustme.CA,
    request_cert: bool,
    client_has_cert: bool,
    recorded: bool,
) -> None:
    controller = serve(endpoint(mx_files, tls=TlsSettings(request_client_cert=request_cert)))
    context = client_context(ca)
    if client_has_cert:
        trustme.CA().issue_cert("client.example").configure_cert(context)  # from a CA the server does not know
    for max_version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context.maximum_version = max_version
        client = starttls(controller, context)
        client.ehlo()
        client.quit()
    sessions = controller.recorder.wait_sessions(2)
    assert [s["tls"]["client_cert"] for s in sessions] == [recorded, recorded]
    assert [s["tls"]["version"] for s in sessions] == ["TLSv1.2", "TLSv1.3"]


# --- settings validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_version": "TLSv1.4"}, r"tls\.min_version: 'TLSv1\.4' is not a TLS version"),
        ({"min_version": "TLSv1.3", "max_version": "TLSv1.2"}, "min_version TLSv1.3 is above max_version TLSv1.2"),
        ({"seclevel": 6}, "not an OpenSSL security level 0-5"),
        ({"handshake": "hang"}, r"tls\.handshake: 'hang' is not a handshake mode"),
        ({"ciphers": ""}, "not a cipher string"),
    ],
)
def test_bad_tls_settings_are_rejected(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SmtpServerError, match=message):
        TlsSettings(**settings)


def test_tls_settings_read_and_write_the_world_spec_form() -> None:
    settings = TlsSettings.from_dict({"min_version": "TLSv1", "seclevel": 0, "handshake": None})
    assert settings == TlsSettings(min_version="TLSv1", seclevel=0)
    assert TlsSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(SmtpServerError, match=r"tls: 'min' is not a TLS setting"):
        TlsSettings.from_dict({"min": "TLSv1"})
