"""The SMTP dialogue around TLS, as the model follows it: replies and delays of the fake server.

Postfix 3.7 ``src/smtp/smtp_proto.c`` and ``smtp_trouble.c``: a 4xx reply defers the recipient (and another MX host
may be tried), a 5xx reply bounces it; the DSN is the reply's enhanced status code, else ``class.0.0``. A reply that
comes later than the stage's ``smtp_*_timeout`` (``smtp_helo_timeout``, ``smtp_starttls_timeout``,
``smtp_mail_timeout``, ``smtp_rcpt_timeout``, ``smtp_data_init_timeout``, ``smtp_data_done_timeout``) ends the session
with ``4.4.2 conversation with H[A] timed out while …`` (observed on 3.7.11, scenarios/faults/smtp-connection.yaml).
A 530 to MAIL from a server that requires STARTTLS bounces a plaintext delivery with 5.7.0 (observed). What the
model does not follow (a dropped connection, an unusual greeting or EHLO reply, a delay within half a second of the
timeout or beyond the case's own wait) makes the outcome uncertain rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from harness._explain_inputs import CaseInputs
from harness._explain_policy import TlsPolicy
from harness.model import ServerSpec

__all__ = [
    "CASE_TIMEOUT_S",
    "Outcome",
    "Slowness",
    "after_tls",
    "ehlo_offers_starttls",
    "opening",
    "reply_dsn",
    "slowness",
    "stage_timeout",
]


@dataclass(frozen=True)
class Outcome:
    """What one attempt ends in.

    Attributes:
        status, dsn, reason: as Postfix would log them if this were the last attempt.
        tls: the level of the ``… TLS connection established`` line (``none`` without TLS).
        kind: ``sent``, ``soft`` (try the next address), ``hard`` (bounce now), ``skip`` (no connection: the
            TLS policy lookup failed; ``relay=none``), ``refused`` (no connection; ``relay=none``), ``silent``
            (passed over without a reason: ``smtp_tls_wrappermode`` below ``encrypt``).
        certain: False when the model cannot tell (``note`` says why).
    """

    status: str
    dsn: str
    reason: str
    tls: str
    kind: str
    certain: bool = True
    note: str = ""


def opening(server: ServerSpec, slow: Slowness) -> Outcome | None:
    """A greeting or EHLO stage that does not go as usual (a slow or unusual reply), before any TLS."""
    for stage in ("greeting", "ehlo"):
        timed_out = slow(stage, "none")
        if timed_out is not None:
            return timed_out
        reply = getattr(server.replies, stage)
        if reply is not None and not reply.startswith("2"):
            what = "a dropped connection at" if reply == "drop" else f"a {reply.splitlines()[-1][:3]} reply to"
            note = f"{what} the {stage} is not modelled"
            return Outcome("deferred", "4.0.0", reply, "none", "soft", False, note)
    return None


def after_tls(server: ServerSpec, recipient: str, tls: str, at: str, steps: list[str], slow: Slowness) -> Outcome:
    """The rest of the session: the server's replies to MAIL, RCPT, DATA and the message, and slow replies."""
    replies = server.replies
    rcpt = None
    if replies.rcpt:
        rcpt = replies.rcpt.get(recipient, replies.rcpt.get(recipient.lower(), replies.rcpt.get("default")))
    if tls == "none" and server.require_starttls:
        steps.append("The server requires STARTTLS before MAIL: 530 5.7.0 Must issue a STARTTLS command first.")
        reason = f"host {at} said: 530 5.7.0 Must issue a STARTTLS command first"
        return Outcome("bounced", "5.7.0", reason, tls, "hard")
    for stage, reply in (("mail", replies.mail), ("rcpt", rcpt), ("data", replies.data), ("eom", replies.eom)):
        timed_out = slow(stage, tls)
        if timed_out is not None:
            steps.append(timed_out.note or "The server is slower than Postfix waits.")
            return timed_out
        if reply is None or reply[:1] in ("2", "3"):
            continue
        if reply == "drop":
            note = f"a dropped connection at {_STAGES[stage]} is not modelled"
            return Outcome("deferred", "4.4.2", f"lost connection with {at}", tls, "soft", False, note)
        last_line = reply.splitlines()[-1]
        steps.append(f"The server answers {_STAGES[stage]} with {last_line!r}.")
        code, dsn = reply_dsn(last_line)
        status, kind = ("bounced", "hard") if code.startswith("5") else ("deferred", "soft")
        return Outcome(status, dsn, f"host {at} said: {reply}", tls, kind)
    steps.append(f"Postfix delivers the message (TLS: {tls}).")
    return Outcome("sent", "2.0.0", "250 2.0.0 Ok", tls, "sent")


#: Reply stage → (Postfix timeout parameter, its 3.7 default in seconds, what Postfix says it was doing).
_TIMEOUTS = {
    "greeting": ("smtp_helo_timeout", 300.0, "receiving the initial server greeting"),
    "ehlo": ("smtp_helo_timeout", 300.0, "receiving the EHLO reply"),
    "starttls": ("smtp_starttls_timeout", 300.0, "receiving the STARTTLS response"),
    "mail": ("smtp_mail_timeout", 300.0, "sending MAIL FROM"),
    "rcpt": ("smtp_rcpt_timeout", 300.0, "sending RCPT TO"),
    "data": ("smtp_data_init_timeout", 120.0, "sending DATA command"),
    "eom": ("smtp_data_done_timeout", 600.0, "sending end of data -- message may be sent more than once"),
}
_STAGES = {"mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA", "eom": "the end of the message"}
#: Seconds a case waits for its outcomes by default (``--timeout``): longer waits are not judged by the harness.
CASE_TIMEOUT_S = 30.0

#: (stage, TLS level so far) → the outcome of a reply slower than Postfix waits, or None.
Slowness = Callable[[str, str], Outcome | None]


def slowness(inputs: CaseInputs, policy: TlsPolicy, server: ServerSpec, at: str) -> Slowness:
    """Judges each stage's ``delays`` against Postfix's timeout for it (``smtp_*_timeout``)."""

    def judge(stage: str, tls: str) -> Outcome | None:
        delay = float(getattr(server.delays, stage))
        if delay <= 0:
            return None
        name, _, doing = _TIMEOUTS[stage]
        limit = stage_timeout(inputs, policy, stage)
        timed_out = Outcome("deferred", "4.4.2", f"conversation with {at} timed out while {doing}", tls, "soft")
        if delay >= CASE_TIMEOUT_S or abs(delay - limit) < 0.5:
            return replace(timed_out, certain=False, note=f"a {delay:g} s reply delay against {name} = {limit:g} s")
        if delay > limit:
            return replace(timed_out, note=f"The server waits {delay:g} s before it answers; {name} is {limit:g} s.")
        return None

    return judge


def stage_timeout(inputs: CaseInputs, policy: TlsPolicy, stage: str) -> float:
    """Seconds Postfix waits for the server's reply at ``stage`` (its ``smtp_*_timeout``, see ``_TIMEOUTS``)."""
    name, default, _ = _TIMEOUTS[stage]
    return _seconds(inputs.param(name, policy.service).value, default)


def _seconds(value: str, default: float) -> float:
    """A Postfix time value (``300s``, ``5m``, ``1h``; a bare number is seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = value.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text) if text else default
    except ValueError:
        return default


def reply_dsn(reply: str) -> tuple[str, str]:
    """(reply code, DSN): the enhanced status code in the text, else class.0.0."""
    code = reply[:3]
    words = reply[4:].split()
    dsn = words[0] if words and words[0][:1] == code[:1] and words[0].count(".") == 2 else f"{code[0]}.0.0"
    return code, dsn


def ehlo_offers_starttls(server: ServerSpec) -> bool:
    ehlo = server.replies.ehlo
    return ehlo is None or "STARTTLS" in ehlo.upper()
