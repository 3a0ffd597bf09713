"""The test messages the harness injects: RFC 5322 text built with the standard library's email package.

Header fields with non-ASCII text are encoded as RFC 2047 encoded-words and the body gets a MIME charset, as a
real mail program would send them, so that Postfix does not need SMTPUTF8 for a subject such as "Grüße".
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from harness.model import Message

__all__ = ["DEFAULT_BODY", "DEFAULT_SUBJECT", "rfc5322"]

DEFAULT_SUBJECT = "mxharness test message"
DEFAULT_BODY = "Test message sent by mxharness.\n"


def rfc5322(message: Message, message_id: str) -> bytes:
    """The message as bytes for ``sendmail``: From, To, Subject, Date, Message-ID, then ``headers``.

    Args:
        message: the scenario's message; a ``headers`` entry named From, To, Subject or Date replaces the
            harness's field of that name (compared case-insensitively); others are added.
        message_id: the Message-ID without angle brackets (the harness finds the queue id by it).

    Returns:
        CRLF-terminated message text (``email.policy.SMTP``).
    """
    email = EmailMessage(policy=SMTP)
    fields = {
        "From": message.from_ or "MAILER-DAEMON",
        "To": message.to,
        "Subject": message.subject if message.subject is not None else DEFAULT_SUBJECT,
        "Date": formatdate(localtime=False),
    }
    overrides = {name.lower(): (name, value) for name, value in message.headers.items()}
    for name, value in fields.items():
        name, value = overrides.pop(name.lower(), (name, value))
        email[name] = value
    email["Message-ID"] = f"<{message_id}>"
    for name, value in overrides.values():
        email[name] = value
    email.set_content(message.body if message.body is not None else DEFAULT_BODY)
    return email.as_bytes()
