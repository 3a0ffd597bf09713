"""The fake world's DNS data: records, faults and the answers they give. Private: import from :mod:`harness.dns`.

A :class:`Zone` answers one question like the pod's only resolver would, without any network: records that
exist are returned, a CNAME is chased inside the zone, names that exist without the asked type get NODATA, every
other name NXDOMAIN. On top of that a :class:`DnsFault` makes a name (one type, or every type) fail the way a
broken or unreachable DNS does, and :attr:`Record.dnssec` and the ``dnssec_probe`` switch decide the AD bit
Postfix's DANE support trusts (RFC 4035 §3.2.3).

This module imports only the standard library, dnslib and :mod:`harness.errors`: it runs inside the peer
container.
"""

from __future__ import annotations

__all__ = [
    "DNS_FAULTS",
    "RECORD_TYPES",
    "Answer",
    "DnsFault",
    "Record",
    "Zone",
    "ZoneError",
]

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dnslib import QTYPE, RDMAP, RR, TXT, DNSError  # type: ignore[import-untyped]

from harness.errors import HarnessError

RECORD_TYPES = frozenset({"MX", "A", "AAAA", "CNAME", "TXT", "TLSA"})
"""Record types a fake world can publish."""

DNS_FAULTS = ("servfail", "refused", "nxdomain", "timeout")
"""What a :class:`DnsFault` makes the server do: rcode 2, rcode 5, rcode 3, or no reply at all."""

_FAULT_RCODES = {"servfail": "SERVFAIL", "refused": "REFUSED", "nxdomain": "NXDOMAIN", "timeout": None}


class ZoneError(HarnessError):
    """A record, a fault or a set of them cannot form a zone (bad name, type, value, a CNAME conflict, two
    faults for one question)."""


def _normalize_name(name: str) -> str:
    """Lower-case, strip the trailing dot and check RFC 1035 §2.3.4 limits. The root is ``"."``."""
    folded = name.strip().lower()
    if folded in ("", "."):
        return "."
    folded = folded.removesuffix(".")
    labels = folded.split(".")
    if any(not label for label in labels) or any(len(label) > 63 for label in labels) or len(folded) > 253:
        raise ZoneError(
            f"bad domain name {name!r}: empty label, label over 63 octets or name over 253 octets. "
            "Hint: write a name such as 'mx1.example.com' (trailing dot optional)."
        )
    return folded


def _ancestors(name: str) -> Iterable[str]:
    """``a.b.c`` → ``b.c``, ``c``, ``.``: the empty non-terminals above a name (RFC 8020 §2)."""
    labels = name.split(".") if name != "." else []
    for i in range(1, len(labels)):
        yield ".".join(labels[i:])
    yield "."


@dataclass(frozen=True)
class Record:
    """One resource record of the fake world.

    Attributes:
        name: owner name, case-insensitive, trailing dot optional; stored lower-case without the dot.
        rtype: one of :data:`RECORD_TYPES`, case-insensitive; stored upper-case.
        value: presentation form: A ``192.0.2.1``, AAAA ``2001:db8::1``, MX ``10 mx1.example.com``,
            CNAME ``target.example.com``, TXT the text itself (no quotes; split into 255-octet strings),
            TLSA ``3 1 1 <hex>`` (usage selector matching-type data, RFC 6698 §2.2).
        ttl: time to live in seconds.
        dnssec: stands for a record in a signed zone that validated: when every record of a non-empty NOERROR
            answer has it (the CNAME chain included), the reply carries AD=1 (RFC 4035 §3.2.3), which is what
            Postfix's DANE support trusts. Nothing is signed.

    Raises:
        ZoneError: the name, type, value or TTL is malformed.
    """

    name: str
    rtype: str
    value: str
    ttl: int = 300
    dnssec: bool = False

    def __post_init__(self) -> None:
        # Normalised at construction so that equal records compare equal and the zone indexes one spelling.
        object.__setattr__(self, "name", _normalize_name(self.name))
        object.__setattr__(self, "rtype", self.rtype.strip().upper())
        if self.rtype not in RECORD_TYPES:
            raise ZoneError(
                f"record {self.name}: unsupported type {self.rtype!r}. "
                f"Hint: use one of {', '.join(sorted(RECORD_TYPES))}."
            )
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ZoneError(f"record {self.name} {self.rtype}: ttl {self.ttl} outside 0..2147483647 seconds.")
        self.rdata()  # parse once so that a bad value fails here, not at query time in the peer

    def rdata(self) -> Any:
        """Return the dnslib RDATA object for :attr:`value`.

        Raises:
            ZoneError: the value does not parse for the record type.
        """
        if self.rtype == "TXT":
            raw = self.value.encode()
            return TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
        try:
            if self.rtype == "A":
                ipaddress.IPv4Address(self.value.strip())
            elif self.rtype == "AAAA":
                ipaddress.IPv6Address(self.value.strip())
            elif self.rtype == "TLSA":
                _usage, _selector, _mtype, data = self.value.split(maxsplit=3)
                bytes.fromhex(data.replace(" ", ""))
            return RDMAP[self.rtype].fromZone(self.value.split())
        except (ValueError, IndexError, TypeError, DNSError) as exc:
            raise ZoneError(
                f"record {self.name} {self.rtype}: cannot parse value {self.value!r}: {exc}. "
                f"Hint: {_VALUE_HINTS[self.rtype]}."
            ) from exc

    @property
    def target(self) -> str:
        """The normalised target host of a CNAME or MX record (empty for other types)."""
        if self.rtype == "CNAME":
            return _normalize_name(self.value)
        if self.rtype == "MX":
            return _normalize_name(self.value.split()[1])
        return ""

    def to_rr(self) -> Any:
        """Return this record as a dnslib ``RR``."""
        return RR(self.name, getattr(QTYPE, self.rtype), rdata=self.rdata(), ttl=self.ttl)


_VALUE_HINTS = {
    "A": "an IPv4 address such as '192.0.2.1'",
    "AAAA": "an IPv6 address such as '2001:db8::1'",
    "MX": "'<preference> <host>', e.g. '10 mx1.example.com'",
    "CNAME": "a host name such as 'target.example.com'",
    "TLSA": "'<usage> <selector> <matching type> <hex>', e.g. '3 1 1 0a1b…'",
}


@dataclass(frozen=True)
class DnsFault:
    """A question the fake DNS answers with a failure instead of its records.

    Attributes:
        name: owner name it applies to, exactly (not its subdomains); normalised like :attr:`Record.name`.
        rtype: the query type it applies to, e.g. ``TLSA`` (any type dnslib names, such as ``NS``), or ``*``
            for every type. A fault for the exact type wins over a ``*`` fault of the same name.
        fault: ``servfail`` (rcode 2: the resolver could not get an answer; Postfix: temporary failure, and
            ``TLSA lookup error`` for DANE), ``refused`` (rcode 5), ``nxdomain`` (rcode 3 even though records
            exist), or ``timeout`` (no reply at all, UDP and TCP: the stub resolver retries, then gives up with
            TRY_AGAIN).

    Raises:
        ZoneError: bad name, unknown type or unknown fault.
    """

    name: str
    rtype: str
    fault: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _normalize_name(self.name))
        object.__setattr__(self, "rtype", self.rtype.strip().upper())
        if self.rtype != "*" and self.rtype not in QTYPE.reverse and not re.fullmatch(r"TYPE\d+", self.rtype):
            raise ZoneError(
                f"DNS fault for {self.name}: unknown record type {self.rtype!r}. "
                f"Hint: use a type such as {', '.join(sorted(RECORD_TYPES))}, or '*' for every type."
            )
        if self.fault not in DNS_FAULTS:
            raise ZoneError(
                f"DNS fault for {self.name} {self.rtype}: unknown fault {self.fault!r}. "
                f"Hint: use one of {', '.join(DNS_FAULTS)}."
            )


@dataclass(frozen=True)
class Answer:
    """What the zone answers to one question.

    Attributes:
        rcode: ``"NOERROR"`` (records or NODATA), ``"NXDOMAIN"``, ``"SERVFAIL"``, ``"REFUSED"``, or None when
            the server must not reply at all (a ``timeout`` fault).
        records: answer section in order: the CNAME chain first, then the records of the final name.
        ad: the Authenticated Data bit (RFC 4035 §3.2.3): True only for a non-empty NOERROR answer whose
            records are all flagged ``dnssec``, and for the ``dnssec_probe`` question. Negative answers and
            faults have AD=0.
        fault: the :data:`DNS_FAULTS` entry that decided this answer, or None.
    """

    rcode: str | None
    records: tuple[Record, ...] = ()
    ad: bool = False
    fault: str | None = None


class Zone:
    """An authoritative view of every name in the fake world, with its faults.

    Args:
        records: the world's records, in any order. Duplicates are kept once.
        faults: questions to fail (see :class:`DnsFault`); a fault wins over records.
        names: owner names that exist without records (NODATA for every type).
        dnssec_probe: answer the root ``NS .`` question NOERROR with AD=1 (and no records), which is all
            Postfix ≥ 3.6's ``dnssec_probe`` looks at before it trusts AD bits; without it, ``NS .`` is NODATA
            with AD=0 and Postfix warns ``DNSSEC validation may be unavailable``.

    Raises:
        ZoneError: a name has a CNAME together with other data, or two CNAMEs (RFC 1034 §3.6.2, RFC 2181
            §10.1); or two faults name the same name and type.
    """

    def __init__(
        self,
        records: Iterable[Record],
        *,
        faults: Iterable[DnsFault] = (),
        dnssec_probe: bool = False,
        names: Iterable[str] = (),
    ) -> None:
        self._records = tuple(dict.fromkeys(records))
        self._rrsets: dict[tuple[str, str], list[Record]] = {}
        self._names: set[str] = {"."}
        for name in names:  # listed without records: they exist (NODATA), as do their ancestors
            self._names.add(_normalize_name(name))
            self._names.update(_ancestors(_normalize_name(name)))
        for record in self._records:
            self._rrsets.setdefault((record.name, record.rtype), []).append(record)
            self._names.add(record.name)
            self._names.update(_ancestors(record.name))
        for (name, rtype), rrset in self._rrsets.items():
            if rtype != "CNAME":
                continue
            others = sorted(t for (n, t) in self._rrsets if n == name and t != "CNAME")
            if others or len(rrset) > 1:
                clash = f"other data ({', '.join(others)})" if others else "a second CNAME"
                raise ZoneError(
                    f"zone: {name} has a CNAME and {clash}, which RFC 1034 §3.6.2 forbids. "
                    "Hint: keep either the CNAME or the other records."
                )
        self._faults: dict[tuple[str, str], DnsFault] = {}
        for fault in faults:
            other = self._faults.setdefault((fault.name, fault.rtype), fault)
            if other.fault != fault.fault:
                raise ZoneError(
                    f"zone: {fault.name} {fault.rtype} has two faults, {other.fault} and {fault.fault}. "
                    "Hint: keep one fault per name and type."
                )
        self.dnssec_probe = dnssec_probe

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record of the zone, in the order first given."""
        return self._records

    @property
    def faults(self) -> tuple[DnsFault, ...]:
        """Every fault of the zone, in the order first given."""
        return tuple(self._faults.values())

    def exists(self, name: str) -> bool:
        """Whether ``name`` owns records or is an empty non-terminal above one (or the root)."""
        return _normalize_name(name) in self._names

    def _fault(self, name: str, qtype: str) -> DnsFault | None:
        return self._faults.get((name, qtype)) or self._faults.get((name, "*"))

    def answer(self, qname: str, qtype: str) -> Answer:
        """Answer one question as the pod's resolver (recursive for the client, authoritative for the world).

        Args:
            qname: the queried name (any case, trailing dot optional).
            qtype: the queried type mnemonic, e.g. ``"MX"``; ``"ANY"`` returns every record at the name.
                Types the zone cannot hold (NS, SOA, ``TYPE65``…) get NODATA or NXDOMAIN like any other.

        Returns:
            The records of that type (NOERROR); a CNAME at the name, chased through the zone (loops end the
            chase), followed by the target's records; NODATA (NOERROR, no records) when the name exists
            without that type; otherwise NXDOMAIN. After a CNAME the rcode is that of the last name in the
            chain (RFC 6604 §3), so a dangling CNAME answers NXDOMAIN with the CNAME in the answer.

            A fault for the queried name, or for a name the CNAME chase reaches (as a resolver would ask for
            it too), replaces that: ``servfail``/``refused`` answer that rcode with no records, ``nxdomain``
            answers NXDOMAIN with the CNAMEs chased so far, ``timeout`` answers rcode None (no reply).

        Raises:
            ZoneError: ``qname`` is not a valid domain name.
        """
        qtype = qtype.upper()
        name = _normalize_name(qname)
        if self.dnssec_probe and (name, qtype) == (".", "NS") and self._fault(name, qtype) is None:
            return Answer("NOERROR", (), ad=True)
        chain: list[Record] = []
        seen: set[str] = set()
        while True:
            fault = self._fault(name, qtype)
            if fault is not None:
                kept = tuple(chain) if fault.fault == "nxdomain" else ()
                return Answer(_FAULT_RCODES[fault.fault], kept, ad=False, fault=fault.fault)
            if qtype == "ANY":
                found = [r for r in self._records if r.name == name]
            else:
                found = list(self._rrsets.get((name, qtype), ()))
            if found:
                chain.extend(found)
                rcode = "NOERROR"
                break
            cname = self._rrsets.get((name, "CNAME"))
            if cname and qtype != "CNAME":
                chain.extend(cname)
                seen.add(name)
                name = cname[0].target
                if name in seen:  # a CNAME loop: return the chain so far rather than spin
                    rcode = "NOERROR"
                    break
                continue
            rcode = "NOERROR" if name in self._names else "NXDOMAIN"
            break
        ad = rcode == "NOERROR" and bool(chain) and all(r.dnssec for r in chain)
        return Answer(rcode, tuple(chain), ad)
