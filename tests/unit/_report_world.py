"""The report tests' cases (tests/unit/_report_cases.py) with what a run also records of the world: the names of
each server's leaf certificate, the case's main.cf and maps, and each message's Message-ID (as the runner sets
them for the seed's fastmail scenario)."""

from __future__ import annotations

from dataclasses import replace

from harness.results import CaseResult

MESSAGINGENGINE_NAMES = ("*.messagingengine.com", "messagingengine.com", "mail.messagingengine.com")
NAMES = {
    "in1-smtp.messagingengine.com": MESSAGINGENGINE_NAMES,
    "in2-smtp.messagingengine.com": MESSAGINGENGINE_NAMES,
}
MAIN_CF = (
    "# main.cf written by mxharness: harness defaults, then the scenario's parameters\n"
    "maillog_file = /dev/stdout\n"
    "smtp_tls_security_level = may\n"
    "smtp_tls_policy_maps = hash:/etc/postfix/tls_policy\n"
)
MAPS = {"/etc/postfix/tls_policy": "fastmail.fm secure ciphers=high\n"}
MESSAGE_ID = "mxh.1f6d8249dffd.0@fastmail-secure-nexthop.secure-defers.mxharness.test"


def with_world(case: CaseResult) -> CaseResult:
    """``case`` with server names, main.cf, maps and Message-IDs."""
    recipients = tuple(replace(r, message_id=MESSAGE_ID.replace("secure-defers", case.case)) for r in case.recipients)
    return replace(case, server_names=dict(NAMES), main_cf=MAIN_CF, maps=dict(MAPS), recipients=recipients)
