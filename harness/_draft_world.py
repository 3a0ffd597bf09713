"""The ``dns`` and ``servers`` sections of a draft: where each message went and who answered. Private: part of
:mod:`harness.draft`.

A :class:`Destination` is one next-hop (postfix-tls-notes.md "Next-hop"): the recipient domain, or the
``relayhost``, or posttls-finger's destination argument. Its servers are the ones the smtp process tried for it,
in the order it tried them, which is the order of MX preference; preferences that no pasted ``dig``/``host``
answer gives are numbered 10, 20, … and said to be guessed. A bracketed next-hop (``[host]:port``) and a next-hop
that is itself the server's name (Postfix's A-record fallback when there is no MX) get no MX record.
"""

from __future__ import annotations

__all__ = ["Destination", "DraftedWorld", "destinations", "draft_world", "parse_destination", "quoted_reply"]

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from harness._draft_facts import Facts, Outcome, Peer, is_host_name
from harness._draft_input import DnsAnswer, FingerCommand
from harness._draft_pki import DraftedPki
from harness._draft_privacy import Placeholders
from harness.model import FAULT_TYPES
from harness.model_servers import check_reply

_SAID = re.compile(r"host (?P<host>[^\s\[\]]*)\[[^\]]*\] said: (?P<reply>.*) \(in reply to (?P<stage>.+) command\)")
_REFUSED_TO_TALK = re.compile(r"host (?P<host>[^\s\[\]]*)\[[^\]]*\] refused to talk to me: (?P<reply>.*)")
_STAGES = {"RCPT TO": "rcpt", "MAIL FROM": "mail", "end of DATA": "eom", "DATA": "data"}
_NAME_SERVICE = re.compile(
    r"Name service error for name=(?P<name>\S+) type=(?P<type>\w+): Host not found(?P<again>, try again)?"
)
_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2")


@dataclass
class Destination:
    """One next-hop and what the paste shows of it.

    Attributes:
        nexthop: a domain or host name (no brackets, no port). port: the SMTP port (25 unless given).
        key: the destination as written (``[smtp.example.net]:587``): the policy table's lookup key.
        mx: whether Postfix looked up MX records for it.
        hosts: the servers tried, in order (one :class:`Peer` per host name).
        outcomes: the first attempts of its recipients. finger: it is posttls-finger's destination.
        level: posttls-finger's ``-l``, for a finger destination. match: its match arguments.
    """

    nexthop: str
    key: str = ""
    port: int = 25
    mx: bool = True
    hosts: list[Peer] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    finger: bool = False
    level: str | None = None
    match: tuple[str, ...] = ()


@dataclass
class DraftedWorld:
    """``dns`` and ``servers`` entries, and the sentences for the draft's comments."""

    dns: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    guesses: list[str] = field(default_factory=list)
    extra_mx: dict[str, list[str]] = field(default_factory=dict)


def parse_destination(text: str) -> tuple[str, int | None, bool]:
    """``[host]:port``, ``host:port``, ``inet:domain`` or ``domain`` → (name, port or None, bracketed)."""
    text = text.removeprefix("inet:").strip()
    bracketed = text.startswith("[")
    if bracketed and "]" in text:
        name, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = text.partition(":")
    return name.lower().rstrip("."), int(port) if port.isdigit() else None, bracketed


def destinations(facts: Facts, commands: tuple[FingerCommand, ...], *, relayhost: str | None) -> list[Destination]:
    """The next-hops of the paste, in order of first mention."""
    found: dict[str, Destination] = {}
    for outcome in facts.outcomes:
        key = relayhost or outcome.domain
        name, port, bracketed = parse_destination(key)
        destination = found.setdefault(name, Destination(name, key, port or 25, mx=not bracketed))
        destination.outcomes.append(outcome)
        _add_hosts(destination, [facts.peers[key] for key in outcome.tried])
    finger_hosts = [facts.peers[key] for key in facts.finger_peers if key in facts.peers]
    finger_hosts = finger_hosts or [p for p in facts.peers.values() if p.finger]
    command = commands[-1] if commands else None
    targets = [command.destination if command else None, facts.finger_destination]
    target = next((t for t in targets if t and is_host_name(parse_destination(t)[0])), None)
    if finger_hosts or target:
        key = target or _parent(finger_hosts[0].host)
        name, port, bracketed = parse_destination(key)
        destination = found.setdefault(name, Destination(name, key, port or 25, mx=not bracketed))
        destination.finger = True
        destination.level = command.level if command else None
        destination.match = command.match if command else ()
        _add_hosts(destination, finger_hosts)
    placed = {p.host.lower() for d in found.values() for p in d.hosts}
    for peer in facts.peers.values():
        if peer.host.lower() not in placed and peer.host:
            nexthops = sorted(n for n in peer.nexthops if is_host_name(n))
            name = nexthops[0] if nexthops else _parent(peer.host)
            _add_hosts(found.setdefault(name, Destination(name, name)), [peer])
            placed.add(peer.host.lower())
    for destination in found.values():
        hosts = {h.host.lower() for h in destination.hosts}
        destination.mx = destination.mx and hosts != {destination.nexthop}
    return list(found.values())


def _add_hosts(destination: Destination, peers: list[Peer]) -> None:
    names = {h.host.lower(): index for index, h in enumerate(destination.hosts)}
    for peer in peers:
        index = names.get(peer.host.lower())
        if index is None:
            names[peer.host.lower()] = len(destination.hosts)
            destination.hosts.append(peer)
        elif _richer(peer, destination.hosts[index]):
            destination.hosts[index] = peer


def _richer(peer: Peer, other: Peer) -> bool:
    """Whether ``peer`` says more about the server than ``other`` (a certificate beats a failed connection)."""
    return peer.has_certificate and not other.has_certificate


def _parent(host: str) -> str:
    labels = host.lower().split(".")
    return ".".join(labels[1:]) if len(labels) > 2 else host.lower()


def draft_world(
    found: list[Destination],
    answers: tuple[DnsAnswer, ...],
    pki: DraftedPki,
    placeholders: Placeholders,
    *,
    wrappermode: bool,
) -> DraftedWorld:
    """``dns`` and ``servers`` for the destinations."""
    world = DraftedWorld()
    used: set[tuple[str, int]] = set()
    for destination in found:
        _dns(world, destination, answers)
        for peer in destination.hosts:
            _address(world, peer, answers, used)
            _server(world, destination, peer, pki, placeholders, wrappermode=wrappermode)
        for host in world.extra_mx.get(destination.nexthop, []):
            world.dns.setdefault(host, {}).setdefault("A", ["auto"])
            like = destination.hosts[-1].host
            if like in world.servers:
                world.servers.setdefault(host, dict(world.servers[like]))
        for outcome in destination.outcomes:
            if outcome.delivery.relay == "none":
                _name_service_fault(world, outcome)
    return world


def _dns(world: DraftedWorld, destination: Destination, answers: tuple[DnsAnswer, ...]) -> None:
    if not destination.mx or not destination.hosts:
        return
    given: dict[str, int] = {}
    for answer in answers:
        number, _, target = answer.value.partition(" ")
        if answer.rtype == "MX" and answer.owner == destination.nexthop and number.isdigit() and target:
            given[target.lower()] = int(number)
    hosts = [h.host for h in destination.hosts]
    extra = sorted((h for h in given if h not in {x.lower() for x in hosts}), key=given.__getitem__)
    for host in extra:
        world.guesses.append(
            f"{host}: an MX host of {destination.nexthop} that the log does not show; drafted like "
            f"{hosts[-1]} (address chosen by the harness)"
        )
    world.extra_mx[destination.nexthop] = extra
    records = []
    last = 0
    for host in [*hosts, *extra]:
        preference = given.get(host.lower())
        if preference is None:
            preference = last + 10
            world.guesses.append(
                f"MX preference of {host} for {destination.nexthop} not in the log: assumed "
                f"{preference} (the order in which Postfix tried the hosts)"
            )
        last = max(last, preference)
        records.append(f"{preference} {host}")
    world.dns.setdefault(destination.nexthop, {})["MX"] = records


def _address(world: DraftedWorld, peer: Peer, answers: tuple[DnsAnswer, ...], used: set[tuple[str, int]]) -> None:
    node = world.dns.setdefault(peer.host, {})
    addresses = [peer.address.removeprefix("IPv6:")] + [
        a.value for a in answers if a.owner == peer.host.lower() and a.rtype in ("A", "AAAA")
    ]
    for address in addresses:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            continue
        rtype = "A" if parsed.version == 4 else "AAAA"
        if (str(parsed), peer.port) in used and str(parsed) not in node.get(rtype, []):
            world.guesses.append(f"{peer.host}: its address {parsed} is another server's too; the harness picks one")
            continue
        used.add((str(parsed), peer.port))
        values = node.setdefault(rtype, [])
        if str(parsed) not in values:
            values.append(str(parsed))
    if not node.get("A") and not node.get("AAAA"):
        node["A"] = ["auto"]
        if peer.host:
            world.guesses.append(f"{peer.host}: its address is not in the log; the harness picks one")


def _server(
    world: DraftedWorld,
    destination: Destination,
    peer: Peer,
    pki: DraftedPki,
    placeholders: Placeholders,
    *,
    wrappermode: bool,
) -> None:
    if peer.connect_error and not peer.has_certificate:
        if "refused" not in peer.connect_error.lower():
            world.guesses.append(
                f"{peer.host}: '{peer.connect_error}' in the log; drafted without a server (connection refused)"
            )
        return
    spec: dict[str, Any] = world.servers.setdefault(peer.host, {})
    cert = pki.cert_of.get(peer.key)
    if cert and peer.starttls is not False:
        spec["cert"] = cert
    if peer.port != 25:
        spec["ports"] = [peer.port]
        if wrappermode:
            spec["implicit_tls"] = [peer.port]
    tls: dict[str, Any] = {}
    if peer.protocol in _PROTOCOLS and cert:
        tls["max_version"] = peer.protocol
        if peer.cipher and not peer.cipher.startswith("TLS_"):
            tls["ciphers"] = peer.cipher
    if peer.handshake_failed and cert:
        tls["handshake"] = "abort"
        world.guesses.append(
            f"{peer.host}: why the TLS handshake failed is not in the log; drafted as a server "
            "that closes the connection after its 220 to STARTTLS"
        )
    if tls:
        spec["tls"] = tls
    for outcome in destination.outcomes:
        if (outcome.delivery.relay_host or "").lower() == peer.host.lower():
            _reply(spec, outcome, placeholders)


def quoted_reply(reason: str) -> tuple[str, str] | None:
    """The server reply a reason quotes and the stage it answered, when a fake server can give it back:
    ``host H[A] said: 550 5.1.1 … (in reply to RCPT TO command)`` → (``rcpt``, ``550 5.1.1 …``);
    ``host H[A] refused to talk to me: 554 …`` → (``greeting``, …) (Postfix's smtp_proto.c/smtp_connect.c)."""
    stage, reply = None, None
    if m := _SAID.fullmatch(reason):
        stage, reply = _STAGES.get(m["stage"]), m["reply"]
    elif m := _REFUSED_TO_TALK.fullmatch(reason):
        stage, reply = "greeting", m["reply"]
    if stage is None or reply is None:
        return None
    try:
        check_reply(reply)
    except ValueError:
        return None
    return stage, reply


def _reply(spec: dict[str, Any], outcome: Outcome, placeholders: Placeholders) -> None:
    """Give the relay the reply that the outcome's reason quotes."""
    quoted = quoted_reply(outcome.delivery.reason)
    if quoted is None:
        return
    stage, reply = quoted[0], placeholders.scrub(quoted[1])
    replies = spec.setdefault("replies", {})
    if stage == "rcpt":
        replies.setdefault("rcpt", {})[placeholders.address(outcome.delivery.recipient)] = reply
    else:
        replies[stage] = reply


def _name_service_fault(world: DraftedWorld, outcome: Outcome) -> None:
    """``relay=none`` after a DNS failure: NXDOMAIN (the name is left out) or SERVFAIL (``try again``)."""
    m = _NAME_SERVICE.search(outcome.delivery.reason)
    if m is None:
        return
    name = m["name"].lower().rstrip(".")
    if m["again"] and m["type"].upper() in FAULT_TYPES:
        world.dns.setdefault(name, {}).setdefault("fault", {})[m["type"].upper()] = "servfail"
    else:
        world.dns.pop(name, None)
