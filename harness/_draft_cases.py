"""The case of a draft: one message per recipient of the paste and what must happen to it. Private: part of
:mod:`harness.draft`.

A logged first attempt gives ``status`` and ``dsn``; the reason is expected where the drafted world makes Postfix
write it again (a certificate check, a missing STARTTLS, a failed handshake, a refused connection, a DNS failure,
a server reply quoted in the reason). ``relay`` is expected when the relay was the last server of its next-hop.
``tls`` is the level the default release logs (:func:`harness._draft_levels.logged_level_on`), which is not always
the level in the log: a comment says so where they differ.

posttls-finger sends no mail. For its destination the draft sends one message and predicts what Postfix does at
the level posttls-finger checked (``-l``; its default, ``dane``, is ``secure`` without TLSA records): delivered
when the session was Verified, else deferred with ``4.7.5 Server certificate not verified`` at a verifying level,
``4.7.4`` when STARTTLS was not offered at ``encrypt`` or above.

When the configuration given sets no security level for a next-hop, the level the outcome implies
(:func:`harness._draft_levels.implied_level`) becomes a drafted policy table entry, said to be guessed.
"""

from __future__ import annotations

__all__ = ["DraftedCases", "draft_cases"]

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness._draft_facts import Outcome, Peer
from harness._draft_levels import (
    HANDSHAKE_FAILURE,
    NOT_OFFERED,
    NOT_VERIFIED,
    VERIFYING_LEVELS,
    implied_level,
    logged_level_on,
)
from harness._draft_pki import DraftedPki
from harness._draft_privacy import Placeholders
from harness._draft_world import Destination, quoted_reply

#: (level, where it is set) for a next-hop's lookup key, None when the configuration given does not say.
LevelOf = Callable[[str], tuple[str, str] | None]
_STATUSES = ("sent", "deferred", "bounced")
_NAME_NOT_FOUND = "Host or domain name not found. "
_REPRODUCED_PREFIXES = ("connect to ", NOT_OFFERED)


@dataclass
class DraftedCases:
    """The messages of the case, and what the policy table and main.cf need for them.

    Attributes:
        send: ``cases[0].send`` entries. comments: a comment for each entry (or None).
        policy_lines: drafted policy table lines (entries and ``#`` comments).
        main_cf: parameters the messages need (``relayhost`` for posttls-finger's ``[host]:port``).
        guesses, warnings: sentences for the draft's comments.
    """

    send: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str | None] = field(default_factory=list)
    policy_lines: list[str] = field(default_factory=list)
    main_cf: dict[str, str] = field(default_factory=dict)
    guesses: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def draft_cases(
    found: list[Destination],
    pki: DraftedPki,
    placeholders: Placeholders,
    *,
    level_of: LevelOf,
    release: tuple[int, ...],
    release_name: str,
    extra_mx: dict[str, list[str]],
) -> DraftedCases:
    """The messages for every destination (see the module documentation)."""
    cases = DraftedCases()
    for destination in found:
        relay = _last_reached(destination.hosts)
        level = _level(cases, destination, relay, level_of, pki)
        for outcome in destination.outcomes:
            peer = next(
                (h for h in destination.hosts if h.host.lower() == (outcome.delivery.relay_host or "").lower()), None
            )
            expect, comment = _expect(outcome, peer, pki, release, release_name)
            if "reason" in expect:
                expect["reason"] = placeholders.scrub(expect["reason"])
            if not extra_mx.get(destination.nexthop) and peer is not None and peer is destination.hosts[-1]:
                expect["relay"] = peer.host
            _check(cases, destination, outcome, level)
            cases.send.append({"to": placeholders.address(outcome.delivery.recipient), "expect": expect})
            cases.comments.append(comment)
        if not destination.outcomes:
            _predicted(cases, destination, relay, level, pki, release)
    return cases


def _last_reached(hosts: list[Peer]) -> Peer | None:
    reached = [h for h in hosts if not h.connect_error or h.has_certificate]
    return reached[-1] if reached else None


def _level(
    cases: DraftedCases,
    destination: Destination,
    relay: Peer | None,
    level_of: LevelOf,
    pki: DraftedPki,
) -> str | None:
    """The security level for the destination: configured, posttls-finger's, or implied (drafted)."""
    configured = level_of(destination.key)
    if configured is not None:
        return configured[0]
    if destination.finger and not destination.outcomes:
        level = destination.level or "dane"
        note = "from the posttls-finger command" if destination.level else "posttls-finger's default"
        if level in ("dane", "dane-only"):
            level, note = "secure", f"{note} 'dane', which is 'secure' without TLSA records"
        attributes = f" match={':'.join(destination.match)}" if destination.match else ""
        cases.policy_lines += [f"# {destination.key}: {note}", f"{destination.key} {level}{attributes}"]
        if destination.port != 25 or destination.key.startswith("["):
            cases.main_cf["relayhost"] = destination.key if destination.key.startswith("[") else f"[{destination.key}]"
        return level
    outcome = destination.outcomes[0] if destination.outcomes else None
    implied = implied_level(outcome, relay, destination.nexthop, pki.names(relay.key) if relay else [])
    if implied is None:
        return None
    level, why = implied
    cases.policy_lines += [f"# guessed: {why}", f"{destination.key} {level}"]
    cases.guesses.append(f"security level for {destination.key} not in the configuration given: {level} ({why})")
    return level


def _expect(
    outcome: Outcome, relay: Peer | None, pki: DraftedPki, release: tuple[int, ...], release_name: str
) -> tuple[dict[str, Any], str | None]:
    delivery = outcome.delivery
    expect: dict[str, Any] = {}
    if delivery.status in _STATUSES:
        expect["status"] = delivery.status
    expect["dsn"] = delivery.dsn
    reason = _reproduced_reason(delivery.reason)
    if reason:
        expect["reason"] = reason
    comment = f"{outcome.origin}: {delivery.status} {delivery.dsn} ({delivery.reason})"
    logged = relay.level if relay is not None else None
    expected: str | None = None
    if delivery.status == "sent" and logged:
        expected = logged
    elif NOT_VERIFIED in delivery.reason and relay is not None:
        expected = logged_level_on(release, chain_trusted=_trusted(pki, relay), name_matched=False)
    elif delivery.reason.startswith(NOT_OFFERED):
        expected = "none"
    if expected:
        expect["tls"] = expected
    if logged and expected and logged != expected:
        comment += (
            f"; the log says '{logged} TLS connection established' (the wording of Postfix 2.11-3.5 and 3.10.4+), "
            f"Postfix {release_name} logs {expected} for the same failure"
        )
    return expect, comment


def _reproduced_reason(reason: str) -> str | None:
    for fixed in (NOT_VERIFIED, HANDSHAKE_FAILURE):
        if fixed in reason:
            return fixed
    if reason.startswith(_NAME_NOT_FOUND) and " type=" in reason:
        # After NXDOMAIN for the MX query Postfix 3.x looks up A and AAAA too and names the last type it asked.
        return reason.split(" type=", 1)[0]
    if reason.startswith(_REPRODUCED_PREFIXES) or quoted_reply(reason) is not None:
        return reason
    return None


def _trusted(pki: DraftedPki, peer: Peer) -> bool:
    name = pki.cert_of.get(peer.key)
    issuer = pki.certs.get(name or "", {}).get("issuer")
    while issuer and issuer in pki.cas and "issuer" in pki.cas[issuer]:
        issuer = pki.cas[issuer]["issuer"]
    return bool(issuer) and issuer in pki.trust


def _check(cases: DraftedCases, destination: Destination, outcome: Outcome, level: str | None) -> None:
    """Warn when the configuration given cannot explain the outcome."""
    if level is not None and NOT_VERIFIED in outcome.delivery.reason and level not in VERIFYING_LEVELS:
        cases.warnings.append(
            f"the configuration given sets '{level}' for {destination.key}, yet the log shows a failed certificate "
            "check (which needs a verifying level): the draft will not reproduce it unless the configuration "
            "that ran differs"
        )


def _predicted(
    cases: DraftedCases,
    destination: Destination,
    relay: Peer | None,
    level: str | None,
    pki: DraftedPki,
    release: tuple[int, ...],
) -> None:
    """One message to a destination without a logged status line, with the outcome Postfix would have."""
    to = f"user@{destination.nexthop}"
    expect: dict[str, Any] = {}
    if relay is None or level is None:
        cases.warnings.append(
            f"no status= line and no security level for {destination.key}: the message to {to} has no expectation"
        )
    elif relay.level == "Verified":
        expect = {"status": "sent", "tls": "Verified"}
    elif level in VERIFYING_LEVELS and relay.level:
        tls = logged_level_on(release, chain_trusted=_trusted(pki, relay), name_matched=False)
        expect = {"status": "deferred", "dsn": "4.7.5", "reason": NOT_VERIFIED, "tls": tls}
    elif relay.starttls is False and level != "none" and level != "may":
        expect = {"status": "deferred", "dsn": "4.7.4", "reason": NOT_OFFERED}
    elif relay.level:
        expect = {"status": "sent", "tls": relay.level}
    source = "posttls-finger" if destination.finger else "the log"
    cases.send.append({"to": to, "expect": expect})
    cases.comments.append(
        f"predicted: {source} shows no delivery; this is what Postfix at '{level}' does with {relay.host}"
        if relay is not None and level is not None
        else None
    )
