"""Reply faults of the fake SMTP servers, seen by a real client (smtplib) on loopback: replaced and multi-line
replies, drops, delays, STARTTLS required, AUTH advertised."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from _tls_files import write_leaf

from harness.smtp import Delays, Replies, Reply, SmtpController, SmtpEndpoint, SmtpServerError

MX = "mx.example.com"
MESSAGE = b"From: a@example.org\r\nMessage-ID: <f1@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"
DELAY_S = 0.3


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def mx_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return write_leaf(ca, tmp_path_factory.mktemp("tls"), MX)


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def serve(events: list[dict[str, Any]]) -> Iterator[Any]:
    controllers: list[SmtpController] = []

    def start(*, tls: tuple[str, str] | None = None, replies: dict[str, Any] | None = None, **faults: Any) -> Any:
        chain, key = tls or (None, None)
        endpoint = SmtpEndpoint(
            MX, "127.0.0.1", 0, cert_chain_file=chain, key_file=key, replies=Replies.from_dict(replies), **faults
        )
        controller = SmtpController([endpoint], on_event=events.append)
        controller.start()
        controllers.append(controller)
        return controller

    yield start
    for controller in controllers:
        controller.stop()


def connect(controller: SmtpController) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", controller.ports[0], local_hostname="client.example", timeout=5.0)
    client._host = MX  # type: ignore[assignment]  # SNI and name check for the MX name, as Postfix does
    return client


def stage(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "smtp" and e["stage"] == name]


def session(controller: SmtpController) -> dict[str, Any]:
    (summary,) = controller.recorder.wait_sessions(1)
    return summary


# --- replaced replies ------------------------------------------------------------------------------------------


def test_greeting_reply_is_replaced(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(replies={"greeting": "554 5.3.2 mx.example.com no service"})
    with pytest.raises(smtplib.SMTPConnectError) as raised:
        connect(controller)
    assert (raised.value.smtp_code, raised.value.smtp_error) == (554, b"5.3.2 mx.example.com no service")
    session(controller)  # the event follows the banner on the wire: wait until the session is over
    assert [e["reply"] for e in stage(events, "greeting")] == [554]


def test_multi_line_greeting_is_sent_as_given(serve: Any) -> None:
    controller = serve(replies={"greeting": "220-mx.example.com first line\n220 second line"})
    client = connect(controller)
    assert client.ehlo()[0] == 250
    client.quit()
    assert session(controller)["ehlo"] == "client.example"


def test_normal_greeting_names_the_host(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve()
    client = connect(controller)
    assert client.docmd("NOOP")[0] == 250
    client.quit()
    assert [e["reply"] for e in stage(events, "greeting")] == [220]


def test_ehlo_reply_replaces_the_extensions(serve: Any, mx_files: tuple[str, str]) -> None:
    controller = serve(tls=mx_files, replies={"ehlo": "250-mx.example.com\n250 PIPELINING"})
    client = connect(controller)
    code, text = client.ehlo()
    assert (code, text) == (250, b"mx.example.com\nPIPELINING")
    assert client.has_extn("pipelining") and not client.has_extn("starttls")  # the replaced list only
    client.quit()


def test_rejected_ehlo_leaves_helo_working(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(replies={"ehlo": "502 5.5.2 Error: command not recognized"})
    client = connect(controller)
    assert client.ehlo()[0] == 502
    assert client.docmd("MAIL", "FROM:<a@example.org>")[0] == 503  # the EHLO did not count
    assert client.helo()[0] == 250  # HELO keeps its normal reply, as Postfix falls back to it
    assert client.mail("a@example.org")[0] == 250
    client.quit()
    assert [e["reply"] for e in stage(events, "ehlo")] == [502]


def test_starttls_454_keeps_the_session_in_plaintext(
    serve: Any, mx_files: tuple[str, str], ca: trustme.CA, events: list[dict[str, Any]]
) -> None:
    controller = serve(tls=mx_files, replies={"starttls": "454 4.7.0 TLS not available due to local problem"})
    client = connect(controller)
    client.ehlo()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with pytest.raises(smtplib.SMTPResponseException) as raised:
        client.starttls(context=context)
    assert raised.value.smtp_code == 454
    assert client.mail("a@example.org")[0] == 250
    client.quit()
    summary = session(controller)
    assert summary["starttls"] is False and summary["tls"] is None
    assert [e["reply"] for e in stage(events, "starttls")] == [454]


def test_mail_reply_is_replaced_and_the_sender_not_taken(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(replies={"mail": "550 5.7.1 sender rejected"})
    client = connect(controller)
    client.ehlo()
    assert client.mail("a@example.org") == (550, b"5.7.1 sender rejected")
    assert client.rcpt("b@example.com")[0] == 503  # no sender in the envelope: need MAIL
    client.quit()
    assert session(controller)["mail_from"] == "a@example.org"
    assert [e["reply"] for e in stage(events, "mail")] == [550]


def test_rcpt_replies_go_by_address_case_insensitively_else_default(serve: Any, events: list[dict[str, Any]]) -> None:
    rcpt = {"default": "450 4.2.0 mailbox busy", "User@Example.COM": "550 5.1.1 no such user"}
    controller = serve(replies={"rcpt": rcpt})
    client = connect(controller)
    client.ehlo()
    client.mail("a@example.org")
    assert client.rcpt("user@example.com") == (550, b"5.1.1 no such user")
    assert client.rcpt("other@example.com") == (450, b"4.2.0 mailbox busy")
    assert client.docmd("DATA")[0] == 503  # no recipient accepted
    client.quit()
    assert session(controller)["rcpt_to"] == ["user@example.com", "other@example.com"]
    assert [(e["address"], e["reply"]) for e in stage(events, "rcpt")] == [
        ("user@example.com", 550),
        ("other@example.com", 450),
    ]


def test_rcpt_without_default_accepts_other_addresses(serve: Any) -> None:
    controller = serve(replies={"rcpt": {"gone@example.com": "550 5.1.1 no such user"}})
    client = connect(controller)
    client.ehlo()
    client.mail("a@example.org")
    assert client.rcpt("gone@example.com")[0] == 550
    assert client.rcpt("here@example.com")[0] == 250
    assert client.data(MESSAGE)[0] == 250
    client.quit()
    assert session(controller)["messages"][0]["rcpt_to"] == ["here@example.com"]


def test_data_reply_refusing_the_354_keeps_command_mode(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(replies={"data": "554 5.5.1 Error: no valid recipients"})
    client = connect(controller)
    client.ehlo()
    client.mail("a@example.org")
    client.rcpt("b@example.com")
    with pytest.raises(smtplib.SMTPDataError) as raised:
        client.data(MESSAGE)
    assert raised.value.smtp_code == 554
    assert client.noop()[0] == 250  # still in command mode
    client.quit()
    assert session(controller)["messages"] == []
    assert [e["reply"] for e in stage(events, "data_command")] == [554]


def test_eom_reply_rejects_the_message(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(replies={"eom": "550-5.7.1 message rejected\n550 5.7.1 as spam"})
    client = connect(controller)
    client.ehlo()
    client.mail("a@example.org")
    client.rcpt("b@example.com")
    assert client.data(MESSAGE) == (550, b"5.7.1 message rejected\n5.7.1 as spam")
    client.quit()
    (message,) = session(controller)["messages"]
    assert (message["message_id"], message["accepted"], message["queue_id"]) == ("f1@example.org", False, None)
    (data,) = stage(events, "data")
    assert (data["reply"], data["accepted"], data["queue_id"]) == (550, False, None)
    assert [e["reply"] for e in stage(events, "data_command")] == [354]  # control: the 354 was normal


# --- drops ----------------------------------------------------------------------------------------------------------


def test_drop_at_greeting_closes_without_a_banner(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(replies={"greeting": "drop"})
    with pytest.raises(smtplib.SMTPServerDisconnected):
        connect(controller)
    assert session(controller)["ehlo"] is None
    (greeting,) = stage(events, "greeting")
    assert (greeting["reply"], greeting["dropped"]) == (None, True)


@pytest.mark.parametrize("where", ["ehlo", "mail", "rcpt", "data", "eom"])
def test_drop_at_a_stage_disconnects_the_client(serve: Any, events: list[dict[str, Any]], where: str) -> None:
    controller = serve(replies={where: {"default": "drop"} if where == "rcpt" else "drop"})
    client = connect(controller)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        assert client.ehlo()[0] == 250
        assert client.mail("a@example.org")[0] == 250
        assert client.rcpt("b@example.com")[0] == 250
        client.data(MESSAGE)
    client.close()
    summary = session(controller)
    event = {"ehlo": "ehlo", "mail": "mail", "rcpt": "rcpt", "data": "data_command", "eom": "data"}[where]
    (dropped,) = stage(events, event)
    assert (dropped["reply"], dropped["dropped"]) == (None, True)
    assert stage(events, "close")[0]["error"] is None  # the server closed it
    if where == "eom":
        assert [(m["size"], m["accepted"]) for m in summary["messages"]] == [(len(MESSAGE), False)]
    else:
        assert summary["messages"] == []


def test_drop_at_starttls_closes_before_the_220(
    serve: Any, mx_files: tuple[str, str], events: list[dict[str, Any]]
) -> None:
    controller = serve(tls=mx_files, replies={"starttls": "drop"})
    client = connect(controller)
    client.ehlo()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.starttls(context=ssl.create_default_context())
    client.close()
    summary = session(controller)
    assert summary["starttls"] is False and summary["tls"] is None
    assert stage(events, "starttls")[0]["dropped"] is True


def test_drop_after_starttls_closes_the_tls_session(
    serve: Any, mx_files: tuple[str, str], ca: trustme.CA, events: list[dict[str, Any]]
) -> None:
    controller = serve(tls=mx_files, replies={"mail": "drop"})
    client = connect(controller)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    client.starttls(context=context)
    client.ehlo()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.mail("a@example.org")
    client.close()
    summary = session(controller)
    assert summary["tls"] is not None and summary["mail_from"] == "a@example.org"


# --- delays ---------------------------------------------------------------------------------------------------------


def test_delay_comes_before_the_reply_of_its_stage_only(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(delays=Delays(mail=DELAY_S))
    client = connect(controller)
    client.ehlo()
    start = time.monotonic()
    assert client.mail("a@example.org")[0] == 250
    delayed = time.monotonic() - start
    start = time.monotonic()
    assert client.rcpt("b@example.com")[0] == 250
    undelayed = time.monotonic() - start
    client.quit()
    assert DELAY_S <= delayed < DELAY_S + 1.0
    assert undelayed < DELAY_S  # control: RCPT has no delay
    assert [e["reply"] for e in stage(events, "mail")] == [250]


def test_greeting_delay_holds_the_banner(serve: Any) -> None:
    controller = serve(delays=Delays(greeting=DELAY_S))
    start = time.monotonic()
    client = connect(controller)
    assert DELAY_S <= time.monotonic() - start < DELAY_S + 1.0
    client.quit()


def test_delay_then_drop(serve: Any, events: list[dict[str, Any]]) -> None:
    controller = serve(delays=Delays(rcpt=DELAY_S), replies={"rcpt": {"default": "drop"}})
    client = connect(controller)
    client.ehlo()
    client.mail("a@example.org")
    start = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.rcpt("b@example.com")
    assert time.monotonic() - start >= DELAY_S
    client.close()
    assert stage(events, "rcpt")[0]["dropped"] is True


# --- require_starttls and auth --------------------------------------------------------------------------------------


def test_require_starttls_refuses_mail_rcpt_data_until_tls(
    serve: Any, mx_files: tuple[str, str], ca: trustme.CA, events: list[dict[str, Any]]
) -> None:
    controller = serve(tls=mx_files, require_starttls=True)
    client = connect(controller)
    client.ehlo()
    must = (530, b"5.7.0 Must issue a STARTTLS command first")
    assert client.mail("a@example.org") == must
    assert client.rcpt("b@example.com") == must
    assert client.docmd("DATA") == must
    assert client.noop()[0] == 250  # other commands still work
    context = ssl.create_default_context()
    ca.configure_trust(context)
    client.starttls(context=context)
    assert client.sendmail("a@example.org", ["b@example.com"], MESSAGE) == {}
    client.quit()
    assert [e["reply"] for e in stage(events, "mail")] == [530, 250]
    assert [e["reply"] for e in stage(events, "data_command")] == [530, 354]
    assert session(controller)["messages"][0]["accepted"] is True


def test_without_require_starttls_plaintext_mail_is_accepted(serve: Any, mx_files: tuple[str, str]) -> None:
    controller = serve(tls=mx_files)
    client = connect(controller)
    assert client.sendmail("a@example.org", ["b@example.com"], MESSAGE) == {}
    client.quit()


@pytest.mark.parametrize("auth", [True, False])
def test_auth_is_advertised_and_any_login_accepted(serve: Any, events: list[dict[str, Any]], auth: bool) -> None:
    controller = serve(auth=auth)
    client = connect(controller)
    client.ehlo()
    assert client.has_extn("auth") is auth
    if auth:
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert client.login("user", "secret")[0] == 235
        assert [(e["mechanism"], e["login"]) for e in stage(events, "auth")] == [("PLAIN", "user")]
    client.quit()


# --- values -----------------------------------------------------------------------------------------------------------


def test_reply_values_keep_their_lines_and_code() -> None:
    reply = Reply("250-first\r\n250 last\n")
    assert (reply.lines, reply.code, reply.wire, reply.drop) == (
        ("250-first", "250 last"),
        250,
        "250-first\r\n250 last",
        False,
    )
    assert (Reply("drop").drop, Reply("drop").code, Reply("drop").lines) == (True, None, ())
    assert Reply("550 5.1.1\tno such user").code == 550  # RFC 5321 textstring allows HT


@pytest.mark.parametrize("text", ["hello", "250", "199 too low", "250\tx", "250 caf\u00e9", "250-a\n\n250 b", ""])
def test_malformed_replies_are_rejected(text: str) -> None:
    if text == "250":
        assert Reply(text).code == 250  # control: a bare code is a reply line
        return
    with pytest.raises(SmtpServerError, match=r"is not an SMTP reply line: .*RFC 5321 §4\.2.*Hint:"):
        Reply(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"helo": "250 ok"}, r"replies: 'helo' is not a stage \(did you mean 'ehlo'\?\)\. Hint: use one of greeting"),
        ({"rcpt": "550 no"}, r"replies\.rcpt: '550 no' is not a mapping"),
        ({"mail": "ok"}, r"replies\.mail: reply line 'ok'"),
        ({"rcpt": {"a@b.example": "x"}}, r"replies\.rcpt\.a@b\.example: reply line 'x'"),
    ],
)
def test_bad_replies_are_rejected_with_their_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SmtpServerError, match=message):
        Replies.from_dict(data)


def test_an_address_given_twice_is_rejected() -> None:
    with pytest.raises(SmtpServerError, match=r"a@b\.example given twice"):
        Replies.from_dict({"rcpt": {"A@b.example": "550 no", "a@B.example": "550 no"}})


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "2", True])
def test_bad_delays_are_rejected(value: Any) -> None:
    with pytest.raises(SmtpServerError, match=r"delays\.eom: .* is not a number of seconds"):
        Delays.from_dict({"eom": value})


def test_delays_and_replies_round_trip_through_the_world_spec_form(tmp_path: Path) -> None:
    replies = Replies.from_dict({"greeting": "220 hi\n", "rcpt": {"default": "drop", "X@Y.example": "550 no"}})
    assert Replies.from_dict(replies.to_dict()) == replies
    assert replies.to_dict()["rcpt"] == {"default": "drop", "x@y.example": "550 no"}
    delays = Delays.from_dict({"rcpt": 2, "eom": None})
    assert Delays.from_dict(delays.to_dict()) == delays and delays.rcpt == 2.0
