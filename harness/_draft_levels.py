"""Postfix's TLS decisions that a draft needs to predict: certificate name matching, the security level a logged
outcome implies, and the ``… TLS connection established`` level the default release logs. Private: part of
:mod:`harness.draft`.

Name matching follows Postfix 3.6+ (names handed to OpenSSL with NO_PARTIAL_WILDCARDS; postfix-tls-notes.md):
the DNS SANs, or the CommonName when there is no DNS SAN; ``*.d`` matches one label left of ``d``; ``nexthop``
matches the next-hop domain, ``dot-nexthop`` its subdomains, ``hostname`` the MX host name.
``smtp_tls_secure_cert_match`` defaults to ``nexthop, dot-nexthop``, ``smtp_tls_verify_cert_match`` to ``hostname``.

The level logged for a verification failure depends on the release (postfix-tls-notes.md, observed on Debian's
3.5.25, 3.7.11, 3.10.13): with a trusted chain and the wrong name, 2.11-3.5 log ``Trusted``, 3.6.0-3.10.3 log
``num=62:hostname mismatch`` and ``Untrusted``, 3.10.4+ the same failure and ``Trusted``; an untrusted chain is
``Untrusted`` everywhere. The deferral is ``4.7.5 Server certificate not verified`` in all of them.
"""

from __future__ import annotations

__all__ = [
    "HANDSHAKE_FAILURE",
    "NOT_OFFERED",
    "NOT_VERIFIED",
    "VERIFYING_LEVELS",
    "implied_level",
    "logged_level_on",
    "names_match",
    "release_tuple",
]

from harness._draft_facts import Outcome, Peer

#: Levels at which Postfix checks the certificate and defers when the check fails.
VERIFYING_LEVELS = ("fingerprint", "dane", "dane-only", "verify", "secure")
NOT_VERIFIED = "Server certificate not verified"
NOT_OFFERED = "TLS is required, but was not offered by host"
HANDSHAKE_FAILURE = "Cannot start TLS: handshake failure"


def release_tuple(release: str) -> tuple[int, ...]:
    """``3.7.11`` → (3, 7, 11); parts that are not numbers end it (``3.10-rc1`` → (3, 10))."""
    out: list[int] = []
    for part in release.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        out.append(int(digits))
        if digits != part:
            break
    return tuple(out)


def names_match(names: list[str], pattern: str, *, subdomains: bool = False) -> bool:
    """Whether a certificate with these DNS names matches ``pattern`` (a host or domain name).

    Args:
        names: the DNS SANs (or the CommonName when there are none).
        pattern: the name to match.
        subdomains: match names under ``pattern`` (Postfix's ``dot-nexthop`` and ``.domain`` forms) instead.
    """
    target = pattern.lower().rstrip(".")
    for raw in names:
        name = raw.lower()
        if subdomains:
            base = name[2:] if name.startswith("*.") else name
            if base.endswith("." + target) or (name.startswith("*.") and base == target):
                return True
        elif name == target:
            return True
        elif name.startswith("*.") and "." in target and target.split(".", 1)[1] == name[2:]:
            return True
    return False


def implied_level(
    outcome: Outcome | None, relay: Peer | None, nexthop: str, names: list[str]
) -> tuple[str, str] | None:
    """The security level that explains an outcome, with the reason, or None when the outcome says nothing.

    Used only when the configuration given does not set a level for the next-hop (a guess, said as one).

    Args:
        outcome: the first attempt of a recipient of the next-hop.
        relay: the server of that attempt.
        nexthop: the next-hop domain.
        names: the DNS names of the certificate drafted for the relay (Postfix matches these).
    """
    if relay is None:
        return None
    status = outcome.delivery.status if outcome else None
    reason = outcome.delivery.reason if outcome else ""
    by_host = names_match(names, relay.host)
    by_nexthop = names_match(names, nexthop) or names_match(names, nexthop, subdomains=True)
    if NOT_VERIFIED in reason:
        if by_host and not by_nexthop:
            return "secure", f"the certificate names {relay.host} but not {nexthop}: only 'secure' fails on that"
        return "verify", "a certificate check failed: 'verify' (or 'secure') is needed for that"
    if NOT_OFFERED in reason:
        return "encrypt", "Postfix required TLS that the server did not offer"
    if HANDSHAKE_FAILURE in reason:
        return "may", "the handshake failed at 'may' or above"
    if status == "sent" and relay.level == "Verified":
        if by_host or not by_nexthop:
            return "verify", "the session was Verified against the MX host name"
        return "secure", "the session was Verified against the next-hop domain"
    if status == "sent" and relay.level:
        return "may", f"the session was {relay.level}, not verified"
    return None


def logged_level_on(release: tuple[int, ...], *, chain_trusted: bool, name_matched: bool) -> str:
    """The ``… TLS connection established`` level a release logs for a server whose certificate check failed.

    Args:
        release: the Postfix release that runs the draft, e.g. (3, 7).
        chain_trusted: whether the chain leads to a trusted CA.
        name_matched: whether the certificate matched the names the level asks for.
    """
    if not chain_trusted:
        return "Untrusted"
    if name_matched:
        return "Verified"
    if (3, 6) <= release < (3, 10, 4):
        return "Untrusted"
    return "Trusted"
