"""What happened to each message, and how it compares with what the scenario expected.

An :class:`Observed` is read from Postfix's own log (the first ``status=`` line of the recipient, the
``… TLS connection established`` line of that attempt) and from the peer's record of the SMTP session. Nothing here
is predicted: :func:`compare` only holds the observation against ``expect``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.errors import ScenarioIssue
from harness.model import Expect

__all__ = ["CaseResult", "Check", "Observed", "RecipientResult", "ServerSession", "compare"]


@dataclass(frozen=True)
class ServerSession:
    """What a fake server saw of one SMTP session (from the peer's ``session`` event).

    Attributes:
        server: the server's host name in the scenario.
        address, port: where Postfix connected.
        starttls: whether Postfix issued STARTTLS and the handshake completed (RFC 3207).
        tls_version, cipher, sni: of that handshake (SNI None when Postfix sent none; ``smtp_tls_servername``).
        client_cert: whether Postfix presented a client certificate in that handshake (it sends one only when the
            server asks, ``tls.request_client_cert``, and its configuration names one).
        received: whether the server accepted this message's DATA.
    """

    server: str
    address: str
    port: int
    starttls: bool
    tls_version: str | None = None
    cipher: str | None = None
    sni: str | None = None
    client_cert: bool = False
    ehlo: str | None = None
    received: bool = False


@dataclass(frozen=True)
class Observed:
    """One recipient's first delivery attempt, as Postfix logged it.

    Attributes:
        status: ``sent``, ``deferred``, ``bounced`` (Postfix's ``status=``).
        dsn: the enhanced status code (RFC 3463), e.g. ``4.7.5``.
        reason: the text in parentheses at the end of the status line.
        relay: Postfix's ``relay=`` field verbatim (``none`` when no server was reached).
        relay_host, relay_address, relay_port: its parts (None for ``none``).
        tls: level of the ``… TLS connection established`` line of this attempt: ``none``, ``Anonymous``,
            ``Untrusted``, ``Trusted``, ``Verified``.
        tls_protocol, tls_cipher: from that line.
        queue_id: Postfix's queue id of the message.
        received: whether a fake server accepted the message's DATA.
        server: the fake server's view of the session with the relay, if any.
        log_lines: the Postfix log lines of this attempt.
    """

    status: str
    dsn: str
    reason: str
    relay: str
    relay_host: str | None
    relay_address: str | None
    relay_port: int | None
    tls: str
    queue_id: str
    tls_protocol: str | None = None
    tls_cipher: str | None = None
    received: bool = False
    server: ServerSession | None = None
    log_lines: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line a mail admin reads like a log line: ``deferred 4.7.5 Untrusted via host[addr]:25 (reason)``."""
        via = "" if self.relay == "none" else f" via {self.relay}"
        tls = "" if self.tls == "none" else f" {self.tls}"
        return f"{self.status} {self.dsn}{tls}{via} ({self.reason})"


@dataclass(frozen=True)
class Check:
    """One ``expect`` key held against the observation."""

    key: str
    expected: str
    observed: str
    ok: bool


@dataclass(frozen=True)
class RecipientResult:
    """One message of a case: what was expected, what was observed, and each key's verdict."""

    scenario: str
    case: str
    recipient: str
    expect: Expect
    observed: Observed | None
    checks: tuple[Check, ...]
    release: str | None = None
    error: str | None = None
    message_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.observed is not None and all(c.ok for c in self.checks)


@dataclass(frozen=True)
class CaseResult:
    """A whole case: every recipient's result, the Postfix release that ran it, and the logs for the report.

    Attributes:
        release: Postfix's ``mail_version`` as logged at start (``daemon started -- version 3.7.11``), or the
            image's when Postfix did not start (a rejected configuration).
        error: set when the case could not run to the end (timeout, pod failure, configuration rejected by
            Postfix); the recipients then have ``observed`` None where nothing was seen.
        config_issues: Postfix's objections to the case's configuration, as scenario issues (file, line, key);
            the case sent no mail. The CLI exits 2 for them, as for any invalid input.
        kept_pod: name of the Postfix container left running by ``--keep`` after a failure.
        server_chains: server host → subjects of the certificate chain it presents (leaf first), as Postfix
            logs them.
        server_names: server host → the names of its leaf certificate that Postfix matches against: DNS and IP
            subjectAltNames, or ``CN=…`` when there is no DNS subjectAltName.
        main_cf: the case's whole main.cf as the harness wrote it.
        maps: the case's map files (path → content).
        config_changes: what the harness changed in the case's configuration folder (``postfix.config_dir``) so
            that it runs in the pod, one sentence each (:mod:`harness.postfix_neutralise`).
        postfix_warnings: Postfix's warnings during the case: "unused parameter" from postconf for a
            configuration folder's names, and every ``warning:``/``error:`` log line (each once, without prefix).
        postfix_log: every Postfix log line of the case.
        peer_events: every peer event line (DNS queries, SMTP stages, sessions).
    """

    scenario: str
    case: str
    source_file: str
    recipients: tuple[RecipientResult, ...]
    release: str | None = None
    error: str | None = None
    config_issues: tuple[ScenarioIssue, ...] = ()
    kept_pod: str | None = None
    server_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    server_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    main_cf: str = ""
    maps: dict[str, str] = field(default_factory=dict)
    config_changes: tuple[str, ...] = ()
    postfix_warnings: tuple[str, ...] = ()
    postfix_log: tuple[str, ...] = ()
    peer_events: tuple[str, ...] = field(default=(), repr=False)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.passed for r in self.recipients)


def compare(expect: Expect, observed: Observed) -> tuple[Check, ...]:
    """Hold every key given in ``expect`` against ``observed`` (scenario-format.md, ``expect``).

    * ``dsn``: exact, or a prefix at a dot boundary (``4.7`` holds for ``4.7.5``).
    * ``reason``: substring of Postfix's reason text, or a regular expression written ``/…/`` (re.search).
    * ``relay``: a host name (compared case-insensitively with ``relay_host``), ``host[address]:port`` (compared
      with Postfix's ``relay=`` field), or ``none``.
    * ``starttls``, ``sni``, ``protocol``, ``cipher``, ``client_cert``: what the fake server saw of the session with
      the relay (:attr:`Observed.server`); without a session, ``starttls`` and ``client_cert`` are ``false`` and the
      others are ``none``. ``sni`` is compared case-insensitively (a DNS name), ``protocol`` and ``cipher``
      exactly.
    """
    checks: list[Check] = []
    if expect.status is not None:
        checks.append(Check("status", expect.status, observed.status, expect.status == observed.status))
    if expect.dsn is not None:
        ok = observed.dsn == expect.dsn or observed.dsn.startswith(expect.dsn + ".")
        checks.append(Check("dsn", expect.dsn, observed.dsn, ok))
    if expect.reason is not None:
        checks.append(Check("reason", expect.reason, observed.reason, _reason_holds(expect.reason, observed.reason)))
    if expect.relay is not None:
        checks.append(Check("relay", expect.relay, observed.relay, _relay_holds(expect.relay, observed)))
    if expect.tls is not None:
        checks.append(Check("tls", expect.tls, observed.tls, expect.tls == observed.tls))
    if expect.received is not None:
        checks.append(
            Check(
                "received",
                _yes(expect.received),
                _yes(observed.received),
                expect.received == observed.received,
            )
        )
    checks += _server_checks(expect, observed.server)
    return tuple(checks)


def _server_checks(expect: Expect, server: ServerSession | None) -> list[Check]:
    """The ``expect`` keys about what the fake server saw (``starttls``, ``sni``, ``protocol``, ``cipher``,
    ``client_cert``)."""
    checks: list[Check] = []
    if expect.starttls is not None:
        seen = server is not None and server.starttls
        checks.append(Check("starttls", _yes(expect.starttls), _yes(seen), expect.starttls == seen))
    if expect.sni is not None:
        sni = (server.sni if server else None) or "none"
        checks.append(Check("sni", expect.sni, sni, expect.sni.lower() == sni.lower()))
    if expect.protocol is not None:
        protocol = (server.tls_version if server else None) or "none"
        checks.append(Check("protocol", expect.protocol, protocol, expect.protocol == protocol))
    if expect.cipher is not None:
        cipher = (server.cipher if server else None) or "none"
        checks.append(Check("cipher", expect.cipher, cipher, expect.cipher == cipher))
    if expect.client_cert is not None:
        sent = server is not None and server.client_cert
        checks.append(Check("client_cert", _yes(expect.client_cert), _yes(sent), expect.client_cert == sent))
    return checks


def _reason_holds(expected: str, reason: str) -> bool:
    if len(expected) >= 2 and expected.startswith("/") and expected.endswith("/"):
        return re.search(expected[1:-1], reason) is not None
    return expected in reason


def _relay_holds(expected: str, observed: Observed) -> bool:
    if expected == "none":
        return observed.relay == "none"
    if "[" in expected:
        return expected.lower() == observed.relay.lower()
    return (observed.relay_host or "").lower().rstrip(".") == expected.lower().rstrip(".")


def _yes(value: bool) -> str:
    return "true" if value else "false"
