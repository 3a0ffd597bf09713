"""CaseResult values for the report tests, built from real logs of the seed scenarios.

tests/data/report/*.log are the Postfix log and peer event lines of real runs (Postfix 3.7.11, captured with
``Runner().run_case`` and ``result.postfix_log`` / ``result.peer_events``):

* fastmail-secure-defers: ``fastmail.fm secure``; both MX hosts fail with ``num=62:hostname mismatch``,
  Untrusted TLS, ``status=deferred (Server certificate not verified)``;
* fastmail-provider-match-sent: ``match=.messagingengine.com``; Verified TLS, ``status=sent``;
* facebook-untrusted-root: the root is not trusted; ``untrusted issuer``, deferred.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ScenarioIssue
from harness.maillog import DeliveryTracker
from harness.model import Expect
from harness.results import CaseResult, Observed, RecipientResult, ServerSession, compare

DATA = Path(__file__).resolve().parents[1] / "data" / "report"

MESSAGINGENGINE_CHAIN = (
    "/C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com",
    "/C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert SHA2 High Assurance Server CA",
)
CHAINS = {
    "in1-smtp.messagingengine.com": MESSAGINGENGINE_CHAIN,
    "in2-smtp.messagingengine.com": MESSAGINGENGINE_CHAIN,
}


def logs(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Postfix log lines, peer event lines) of a captured run."""
    postfix = (DATA / f"{name}.postfix.log").read_text().splitlines()
    peer = (DATA / f"{name}.peer.log").read_text().splitlines()
    return tuple(postfix), tuple(peer)


def _log_lines(postfix_log: tuple[str, ...], queue_id: str) -> tuple[str, ...]:
    tracker = DeliveryTracker()
    tracker.feed_all(postfix_log)
    return tuple(tracker.lines_for(queue_id))


def fastmail_defers(expect: Expect | None = None, *, reason: str = "Server certificate not verified") -> CaseResult:
    """The secure-defers case; ``expect`` decides whether it passes (default: the scenario's own, it passes)."""
    postfix_log, peer = logs("fastmail-secure-defers")
    expect = expect or Expect(status="deferred", dsn="4.7.5", reason="Server certificate not verified")
    observed = Observed(
        status="deferred",
        dsn="4.7.5",
        reason=reason,
        relay="in2-smtp.messagingengine.com[192.0.2.10]:25",
        relay_host="in2-smtp.messagingengine.com",
        relay_address="192.0.2.10",
        relay_port=25,
        tls="Untrusted",
        queue_id="085D7184144",
        tls_protocol="TLSv1.3",
        tls_cipher="TLS_AES_256_GCM_SHA384",
        received=False,
        server=ServerSession(
            server="in2-smtp.messagingengine.com",
            address="192.0.2.10",
            port=25,
            starttls=True,
            tls_version="TLSv1.3",
            cipher="TLS_AES_256_GCM_SHA384",
            sni=None,
            ehlo="mail.example.test",
            received=False,
        ),
        log_lines=_log_lines(postfix_log, "085D7184144"),
    )
    return _case("fastmail-secure-nexthop", "secure-defers", expect, observed, postfix_log, peer, 2.62)


def fastmail_sent() -> CaseResult:
    """The secure-with-provider-match case: sent, Verified; it passes."""
    postfix_log, peer = logs("fastmail-provider-match-sent")
    expect = Expect(status="sent", tls="Verified", relay="in1-smtp.messagingengine.com")
    observed = Observed(
        status="sent",
        dsn="2.0.0",
        reason="250 2.0.0 Ok: queued as 5AFEFFD3A8",
        relay="in1-smtp.messagingengine.com[66.111.4.74]:25",
        relay_host="in1-smtp.messagingengine.com",
        relay_address="66.111.4.74",
        relay_port=25,
        tls="Verified",
        queue_id="8EB97184AA6",
        tls_protocol="TLSv1.3",
        tls_cipher="TLS_AES_256_GCM_SHA384",
        received=True,
        server=ServerSession(
            server="in1-smtp.messagingengine.com",
            address="66.111.4.74",
            port=25,
            starttls=True,
            tls_version="TLSv1.3",
            cipher="TLS_AES_256_GCM_SHA384",
            sni=None,
            ehlo="mail.example.test",
            received=True,
        ),
        log_lines=_log_lines(postfix_log, "8EB97184AA6"),
    )
    return _case("fastmail-secure-nexthop", "secure-with-provider-match", expect, observed, postfix_log, peer, 3.6)


def timed_out() -> CaseResult:
    """A case that could not finish: no status line within the time limit; nothing observed."""
    postfix_log, peer = logs("facebook-untrusted-root")
    error = (
        "no first-attempt status for user@facebook.com within 30 s (postfix running, peer running). "
        "Hint: see the last log lines; raise the limit with --timeout if the world is slow on purpose"
    )
    recipient = RecipientResult(
        scenario="facebook-nexthop-certificate",
        case="untrusted-root-defers",
        recipient="user@facebook.com",
        expect=Expect(status="deferred", dsn="4.7.5"),
        observed=None,
        checks=(),
        release="3.7.11",
        error=error,
    )
    return CaseResult(
        scenario="facebook-nexthop-certificate",
        case="untrusted-root-defers",
        source_file="scenarios/seed/facebook.yaml",
        recipients=(recipient,),
        release="3.7.11",
        error=error,
        postfix_log=postfix_log[:5],
        peer_events=peer[:3],
        duration_s=31.2,
    )


def config_rejected() -> CaseResult:
    """A case whose configuration Postfix rejected: no mail was sent."""
    issue = ScenarioIssue(
        file="scenarios/x.yaml",
        line=14,
        key="postfix.main.cf.smtp_tls_securty_level",
        message=(
            "Postfix does not know the parameter 'smtp_tls_securty_level' (did you mean 'smtp_tls_security_level'?)"
        ),
    )
    recipient = RecipientResult(
        scenario="typo",
        case="one",
        recipient="a@example.com",
        expect=Expect(status="sent"),
        observed=None,
        checks=(),
        error="Postfix rejected the configuration",
    )
    return CaseResult(
        scenario="typo",
        case="one",
        source_file="scenarios/x.yaml",
        recipients=(recipient,),
        error=str(issue),
        config_issues=(issue,),
        duration_s=1.5,
    )


def _case(
    scenario: str,
    case: str,
    expect: Expect,
    observed: Observed,
    postfix_log: tuple[str, ...],
    peer: tuple[str, ...],
    duration_s: float,
) -> CaseResult:
    recipient = RecipientResult(
        scenario=scenario,
        case=case,
        recipient=f"user@{'fastmail.fm' if 'fastmail' in scenario else 'facebook.com'}",
        expect=expect,
        observed=observed,
        checks=compare(expect, observed),
        release="3.7.11",
    )
    return CaseResult(
        scenario=scenario,
        case=case,
        source_file="scenarios/seed/fastmail.yaml",
        recipients=(recipient,),
        release="3.7.11",
        server_chains=dict(CHAINS),
        postfix_log=postfix_log,
        peer_events=peer,
        duration_s=duration_s,
    )
