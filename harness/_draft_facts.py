"""What a paste says about the world: the servers Postfix talked to and each recipient's first attempt. Private:
part of :mod:`harness.draft`.

A :class:`Peer` gathers every line about one server (``host[address]:port``): the chain as logged at
``smtp_tls_loglevel`` 2 (``depth=N verify=V subject=…``), the ``subjectAltName:`` and ``CommonName`` lines
(Postfix 2.x-3.5, ``src/tls/tls_verify.c``), ``subject_CN=…, issuer_CN=…, fingerprint=…`` (level ≥ 1), the
``… TLS connection established`` line (level, protocol, cipher, and from 3.6 on the server's signature algorithm),
certificate verification failures, posttls-finger's ``-C`` chain print, refused connections and missing STARTTLS.
An :class:`Outcome` is a recipient's first ``status=`` line with the servers tried before it in the same smtp
process (found by :class:`harness.maillog.DeliveryTracker`, as the harness finds its own attempts).
"""

from __future__ import annotations

__all__ = ["Facts", "Outcome", "Peer", "PeerKey", "collect_facts", "is_host_name"]

import ipaddress
import re
from dataclasses import dataclass, field

from harness._draft_input import Entry, Origin, Paste, PrintedCert
from harness._maillog_events import (
    CertVerifyFailure,
    ChainLine,
    Delivery,
    LogEvent,
    PeerCertificate,
    QueueNote,
    SubjectAltName,
    TlsEstablished,
)
from harness.maillog import DeliveryTracker

#: (host name as logged, address, port)
PeerKey = tuple[str, str, int]

_NAMADDR = r"(?P<host>[^\s\[\]]*)\[(?P<address>[^\]\s]*)\](?::(?P<port>\d+))?"
_NAMADDR_FORM = re.compile(_NAMADDR)
# Lines the parser leaves as Other/QueueNote (Postfix 2.x-3.x, posttls-finger).
_SETTING_UP = re.compile(rf"setting up TLS connection to {_NAMADDR}")
_COMMON_NAME = re.compile(rf"{_NAMADDR}:? (?:Matched )?CommonName (?P<name>\S+)")
_MATCHED_SAN = re.compile(rf"{_NAMADDR}: Matched subjectAltName: (?P<name>\S+)")
_CA_FAILURE = re.compile(rf"CA certificate verification failed for {_NAMADDR}: (?P<reason>.*)")
_SESSION_ID = re.compile(
    r"(?:looking for|save) session (?:smtp|lmtp)&(?P<nexthop>[^&]*)&(?P<host>[^&]*)&(?P<address>[^&]*)&"
)
_CONNECT = re.compile(rf"connect to {_NAMADDR}: (?P<reason>.*)")
_NOT_OFFERED = re.compile(rf"TLS is required, but was not offered by host {_NAMADDR}")
_HANDSHAKE = re.compile(rf"SSL_connect error to {_NAMADDR}")
_SIGNATURE = re.compile(r" server-signature (?P<name>\S+)(?: \((?P<detail>[^)]*)\))?")
_CONNECTED = re.compile(rf"Connected to {_NAMADDR}")
_FAILED_SESSION = re.compile(
    r"Failed to establish session to (?P<dest>\S+) via (?P<host>[^\s:\[\]]+):(?P<port>\d+): (?P<reason>.*)"
)
_EHLO_REPLY = re.compile(r"< 250[ -](?P<keyword>\S+)")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# A recipient the harness can send to (harness.model.Message.to) with a domain that can be in the fake DNS.
_RECIPIENT = re.compile(rf"(?:[^@\s\"]+|\"[^\"]+\")@{_LABEL}(?:\.{_LABEL})*")


@dataclass
class Peer:
    """One server as the paste shows it. Built by :func:`collect_facts`; read-only afterwards.

    Attributes:
        host, address, port: the peer as Postfix named it (``port`` 25 when the line had none).
        origin: where it was first mentioned.
        chain: depth → (subject DN, verify result) from ``depth=N verify=V subject=…`` lines.
        sans: DNS names of the certificate (``subjectAltName:`` lines), in log order.
        common_name: ``CommonName`` or ``subject_CN=``; issuer_cn: ``issuer_CN=``.
        fingerprint, pkey_fingerprint: as logged (md5 on Postfix ≤ 3.5, sha256 from 3.6 by default).
        level: ``Anonymous``, ``Untrusted``, ``Trusted`` or ``Verified`` from ``… TLS connection established``.
        protocol, cipher: from the same line. signature: ``RSA-PSS (2048 bits)``, ``ECDSA (P-256)`` (3.6+).
        failures: (depth or None, num or None, reason) of each verification failure line.
        printed: posttls-finger ``-C`` certificates of its session, index 0 first.
        connect_error: ``Connection refused``, ``Connection timed out`` … when a connection failed.
        starttls: whether STARTTLS was offered (None: not logged).
        handshake_failed: an ``SSL_connect error`` was logged.
        nexthops: next-hop domains from Postfix 2.x session cache ids (``smtp&fastmail.fm&host&addr&…``).
        finger: seen in posttls-finger output.
    """

    host: str
    address: str
    port: int
    origin: Origin
    chain: dict[int, tuple[str, bool]] = field(default_factory=dict)
    sans: list[str] = field(default_factory=list)
    common_name: str | None = None
    issuer_cn: str | None = None
    fingerprint: str | None = None
    pkey_fingerprint: str | None = None
    level: str | None = None
    protocol: str | None = None
    cipher: str | None = None
    signature: str | None = None
    failures: list[tuple[int | None, int | None, str]] = field(default_factory=list)
    printed: list[PrintedCert] = field(default_factory=list)
    connect_error: str | None = None
    starttls: bool | None = None
    handshake_failed: bool = False
    nexthops: set[str] = field(default_factory=set)
    finger: bool = False

    @property
    def key(self) -> PeerKey:
        """(host, address, port)."""
        return (self.host, self.address, self.port)

    @property
    def namaddr(self) -> str:
        """``host[address]:port`` as Postfix writes it."""
        return f"{self.host}[{self.address}]:{self.port}"

    @property
    def has_certificate(self) -> bool:
        """Whether the server presented a certificate: a TLS session or anything of a certificate was logged."""
        return bool(self.level) or self.described

    @property
    def described(self) -> bool:
        """Whether anything of the certificate itself (chain, names, fingerprint) was logged."""
        return bool(self.chain or self.sans or self.common_name or self.printed or self.fingerprint or self.issuer_cn)


@dataclass(frozen=True)
class Outcome:
    """A recipient's first delivery attempt as logged.

    Attributes:
        delivery: the ``status=`` line.
        tried: the servers the smtp process talked to during the attempt, in order (the relay last).
    """

    origin: Origin
    delivery: Delivery
    tried: tuple[PeerKey, ...]

    @property
    def domain(self) -> str:
        """The recipient's domain, lower case."""
        return self.delivery.recipient.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Facts:
    """Everything :func:`collect_facts` found.

    Attributes:
        peers: every server, in order of first mention.
        outcomes: first attempts of recipients delivered over SMTP (or not at all: ``relay=none``), one per
            recipient, in log order.
        passed_over: what was read but is not part of the reproduction, as sentences for the draft's comments.
        version: the release of ``daemon started -- version X`` lines, if any.
        finger_peers: the servers posttls-finger connected to or failed to reach, in order.
        finger_destination: the destination of ``Failed to establish session to DEST via …`` lines.
    """

    peers: dict[PeerKey, Peer]
    outcomes: tuple[Outcome, ...]
    passed_over: tuple[str, ...]
    version: str | None
    finger_peers: tuple[PeerKey, ...]
    finger_destination: str | None


def collect_facts(paste: Paste) -> Facts:
    """Gather the facts of a paste (pure; never raises on odd content)."""
    peers: dict[PeerKey, Peer] = {}
    finger_peers: list[PeerKey] = []
    finger_destination: str | None = None
    last_finger: Peer | None = None
    printed = list(paste.printed)
    for index, entry in enumerate(paste.entries):
        while printed and printed[0].after <= index:
            if last_finger is not None:
                last_finger.printed.append(printed[0])
            printed.pop(0)
        peer = _note(peers, entry)
        if entry.finger:
            if m := _FAILED_SESSION.match(entry.event.text):
                finger_destination = finger_destination or m["dest"]
                failed = _peer(peers, m["host"], "", int(m["port"]), entry.origin)
                failed.connect_error, failed.finger = m["reason"], True
                finger_peers.append(failed.key)
            elif _CONNECTED.match(entry.event.text) and peer is not None:
                finger_peers.append(peer.key)
            if peer is not None:
                peer.finger = True
                last_finger = peer
            elif last_finger is not None:
                _finger_chat(last_finger, entry.event.text)
    for rest in printed:
        if last_finger is not None:
            last_finger.printed.append(rest)
    outcomes, passed_over, version = _outcomes(paste.entries, peers)
    return Facts(peers, outcomes, passed_over, version, tuple(dict.fromkeys(finger_peers)), finger_destination)


def _peer(peers: dict[PeerKey, Peer], host: str, address: str, port: int | None, origin: Origin) -> Peer:
    """The peer of that name, address and port, added when new. A name that is no host name (a line mangled in
    the paste) gives a peer that is not kept."""
    key = (host, address, port or 25)
    if not _HOST_NAME.fullmatch(host):
        return Peer(host, address, key[2], origin)
    if key not in peers:
        peers[key] = Peer(host, address, key[2], origin)
    return peers[key]


def _from_namaddr(peers: dict[PeerKey, Peer], text: str, origin: Origin) -> Peer | None:
    m = _NAMADDR_FORM.fullmatch(text)
    return _peer(peers, m["host"], m["address"], int(m["port"]) if m["port"] else None, origin) if m else None


def _note(peers: dict[PeerKey, Peer], entry: Entry) -> Peer | None:
    """Record what one entry says about its peer; returns the peer, None for lines about no server."""
    event, origin = entry.event, entry.origin
    if isinstance(event, TlsEstablished | CertVerifyFailure):
        peer = _peer(peers, event.peer_host, event.peer_address, event.peer_port, origin)
        if isinstance(event, TlsEstablished):
            peer.level, peer.protocol, peer.cipher = event.level, event.protocol, event.cipher
            peer.starttls = True if peer.starttls is None else peer.starttls
            if m := _SIGNATURE.search(event.text):
                peer.signature = f"{m['name']} ({m['detail']})" if m["detail"] else m["name"]
        else:
            peer.failures.append((event.depth, event.num, event.reason))
        return peer
    if isinstance(event, ChainLine | SubjectAltName | PeerCertificate):
        found = _from_namaddr(peers, event.peer, origin)
        if found is None:
            return None
        if isinstance(event, ChainLine):
            found.chain[event.depth] = (event.subject, event.verify)
        elif isinstance(event, SubjectAltName):
            _add_san(found, event.name)
        else:
            found.common_name = found.common_name or event.subject_cn
            found.issuer_cn, found.fingerprint = event.issuer_cn, event.fingerprint
            found.pkey_fingerprint = event.pkey_fingerprint
        return found
    return _note_text(peers, event, origin)


def _note_text(peers: dict[PeerKey, Peer], event: LogEvent, origin: Origin) -> Peer | None:
    text = event.message if isinstance(event, QueueNote) else event.text
    for pattern in (
        _SETTING_UP,
        _CONNECTED,
        _COMMON_NAME,
        _MATCHED_SAN,
        _CA_FAILURE,
        _CONNECT,
        _NOT_OFFERED,
        _HANDSHAKE,
    ):
        if m := pattern.match(text):
            peer = _peer(peers, m["host"], m["address"], int(m["port"]) if m["port"] else None, origin)
            if pattern is _COMMON_NAME:
                peer.common_name = m["name"]
            elif pattern is _MATCHED_SAN:
                _add_san(peer, m["name"])
            elif pattern is _CA_FAILURE:
                peer.failures.append((1, None, m["reason"]))
            elif pattern is _CONNECT:
                peer.connect_error = m["reason"]
            elif pattern is _NOT_OFFERED:
                peer.starttls = False
            elif pattern is _HANDSHAKE:
                peer.handshake_failed = True
            return peer
    if m := _SESSION_ID.match(text):
        same = [p for p in peers.values() if p.host == m["host"] and p.address == m["address"]]
        for peer in same or [_peer(peers, m["host"], m["address"], None, origin)]:
            peer.nexthops.add(m["nexthop"].lower())
    return None


def is_host_name(name: str) -> bool:
    """Whether ``name`` can be a host or domain name of the fake DNS (letters, digits, ``-``, ``_``, dots)."""
    return bool(_HOST_NAME.fullmatch(name))


def _add_san(peer: Peer, name: str) -> None:
    if name not in peer.sans:
        peer.sans.append(name)


def _finger_chat(peer: Peer, text: str) -> None:
    """posttls-finger's SMTP chat (without ``-c``): the EHLO reply says whether STARTTLS is offered."""
    if m := _EHLO_REPLY.match(text):
        if m["keyword"].upper() == "STARTTLS":
            peer.starttls = True
        elif text.startswith("< 250 ") and peer.starttls is None:
            peer.starttls = False  # the last line of the EHLO reply, and no STARTTLS before it
    elif text.startswith("STARTTLS rejected"):
        peer.starttls = False


def _outcomes(
    entries: tuple[Entry, ...], peers: dict[PeerKey, Peer]
) -> tuple[tuple[Outcome, ...], tuple[str, ...], str | None]:
    tracker = DeliveryTracker()
    events: dict[str, Entry] = {}
    for entry in entries:
        if not entry.finger:
            events.setdefault(entry.event.raw, entry)
            tracker.feed(entry.event)
    outcomes: dict[str, Outcome] = {}
    passed_over: list[str] = []
    for attempt in tracker.attempts:
        delivery = attempt.delivery
        origin = events[delivery.raw].origin if delivery.raw in events else Origin("?", 0)
        where = f"{origin}: {delivery.queue_id} to=<{delivery.recipient}>"
        if not _smtp_relay(delivery):
            passed_over.append(f"{where}, relay={delivery.relay}: not an SMTP delivery to another server")
            continue
        if not _RECIPIENT.fullmatch(delivery.recipient):
            passed_over.append(f"{where}: not a mail address the harness can send to")
            continue
        if delivery.recipient.casefold() in outcomes:
            passed_over.append(f"{where}: the same recipient again (the first message counts)")
            continue
        tried: list[PeerKey] = []
        for raw in attempt.lines:
            line = events.get(raw)
            peer = _note_key(peers, line) if line else None
            if peer is not None and peer not in tried:
                tried.append(peer)
        if delivery.relay_host is not None and delivery.relay_address is not None:
            relay = _peer(peers, delivery.relay_host, delivery.relay_address, delivery.relay_port, origin).key
            tried = [key for key in tried if key != relay] + ([relay] if relay in peers else [])
        outcomes[delivery.recipient.casefold()] = Outcome(origin, delivery, tuple(tried))
    return tuple(outcomes.values()), tuple(passed_over), tracker.version


def _note_key(peers: dict[PeerKey, Peer], entry: Entry) -> PeerKey | None:
    """The peer an entry is about (already recorded by :func:`_note`), without recording anything again."""
    event = entry.event
    if isinstance(event, TlsEstablished | CertVerifyFailure):
        key: PeerKey = (event.peer_host, event.peer_address, event.peer_port or 25)
        return key if key in peers else None
    text = event.peer if isinstance(event, ChainLine | SubjectAltName | PeerCertificate) else event.text
    m = _NAMADDR_FORM.search(text)
    if m is None:
        return None
    key = (m["host"], m["address"], int(m["port"]) if m["port"] else 25)
    return key if key in peers else None


def _smtp_relay(delivery: Delivery) -> bool:
    """A delivery to another server (or to none): not local, virtual, LMTP over a socket, nor a content filter
    on a loopback address (``relay=127.0.0.1[127.0.0.1]:10024``)."""
    if delivery.relay == "none":
        return True
    if delivery.relay_address is None:
        return False
    try:
        return not ipaddress.ip_address(delivery.relay_address.removeprefix("IPv6:")).is_loopback
    except ValueError:
        return False
