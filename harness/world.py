"""The concrete world of a scenario: certificates issued, ``auto`` addresses chosen, TLSA data computed.

:func:`build_world` turns the scenario's ``pki``, ``dns`` and ``servers`` into what the pod needs: the peer's
world spec (``/world/world.json`` and the PEM files it names, see docs/internal/world-spec.md) and the PEM of every
CA for Postfix's trust store. Certificates are made fresh at every run (scenario-format.md, ``pki``); nothing is
committed. :func:`build_case_world` gives a case whose ``servers``, ``dns`` or ``pki.certs`` differ from the
scenario's a world of its own, reusing the certificates that did not change.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from harness.model import Case, Scenario
from harness.overrides import merged_world
from harness.pki import KeyPool, Pki, format_dn, tlsa_data
from harness.world_servers import WORLD_DIR, presented_chain, server_entries

__all__ = ["EMPTY_WORLD_FILES", "World", "build_case_world", "build_world"]

#: ``A: auto`` picks from TEST-NET-1 (RFC 5737), ``AAAA: auto`` from the documentation prefix (RFC 3849).
AUTO_V4 = ipaddress.ip_network("192.0.2.0/24")
AUTO_V6 = ipaddress.ip_network("2001:db8::/64")
#: The peer files of a world with nothing in it (no record, address or server): what a pod made ahead of its
#: first case serves until that case's world is swapped in (:meth:`harness.casepod.CasePod.warm`).
EMPTY_WORLD_FILES = {
    f"{WORLD_DIR}/world.json": json.dumps(
        {"version": 1, "dns": {"listen": "127.0.0.53", "port": 53}, "addresses": [], "servers": []}
    ).encode()
}
#: Name of the CA installed when a scenario names a CAfile but trusts no CA (not a valid scenario CA name).
PLACEHOLDER_CA = "mxharness trusts nothing"


@dataclass(frozen=True)
class World:
    """Everything a case's pod needs of the scenario's world.

    Attributes:
        pki: the issued CAs and certificates.
        addresses: host name (lower case, no trailing dot) → its A/AAAA addresses, ``auto`` resolved.
        records: the DNS records as the peer serves them: dicts ``{name, type, value, ttl, dnssec}``.
        servers: the peer's SMTP endpoints: dicts ``{host, address, port, cert_chain, key, sni, starttls,
            implicit_tls, tls, replies, delays, require_starttls, auth}`` (docs/internal/world-spec.md).
        server_certs: server host → the ``pki.certs`` name it presents.
        root_cas: names of the self-signed CAs (the default trust of ``postfix.trust``).
        faults: DNS faults: dicts ``{name, type, fault}`` (type ``*`` for every type).
        dnssec_probe: whether the root ``NS .`` query is answered with AD=1 (some owner has ``dnssec: true``).
        chain_modes: server host → its ``chain`` (``full``, ``leaf``, ``with-root``).
        mx_literals: IP literals used as MX targets; bound in the pod like every other address.
    """

    pki: Pki
    addresses: dict[str, list[str]]
    records: list[dict[str, object]]
    servers: list[dict[str, object]]
    root_cas: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    server_certs: dict[str, str] = field(default_factory=dict)
    faults: list[dict[str, str]] = field(default_factory=list)
    dnssec_probe: bool = False
    chain_modes: dict[str, str] = field(default_factory=dict)
    mx_literals: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def peer_files(self) -> dict[str, bytes]:
        """The files to copy into the peer container: ``/world/world.json`` and the certificate files."""
        literals = _literal_hosts(self.servers) | set(self.mx_literals)
        bound = sorted({a for addrs in self.addresses.values() for a in addrs} | literals)
        dns = {
            "listen": "127.0.0.53",
            "port": 53,
            "records": self.records,
            "faults": self.faults,
            "dnssec_probe": self.dnssec_probe,
            "names": list(self.names),
        }
        spec = {"version": 1, "dns": dns, "addresses": bound, "servers": self.servers}
        return {f"{WORLD_DIR}/world.json": json.dumps(spec, indent=1).encode(), **self.files}

    def server_chains(self) -> dict[str, tuple[str, ...]]:
        """Server host → the subjects (OpenSSL one-line form, as Postfix logs them) of the chain it presents by
        default (no SNI): leaf first, then what its ``chain`` mode sends. Hosts without a certificate are absent."""
        chains: dict[str, tuple[str, ...]] = {}
        for host, name in self.server_certs.items():
            chain = presented_chain(self.pki.cert(name), self.chain_modes.get(host, "full"))
            chains[host] = tuple(format_dn(c.subject) for c in chain)
        return chains

    def server_names(self) -> dict[str, tuple[str, ...]]:
        """Server host → the names its leaf certificate carries, as Postfix matches them: the DNS and IP
        subjectAltNames, or the CN when there is no DNS subjectAltName at all."""
        names: dict[str, tuple[str, ...]] = {}
        for host, name in self.server_certs.items():
            cert = self.pki.cert(name).certificate
            dns_names: list[str] = []
            addresses: list[str] = []
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                dns_names = san.get_values_for_type(x509.DNSName)
                addresses = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
            except x509.ExtensionNotFound:
                pass
            common_names = (
                []
                if dns_names
                else [f"CN={a.value!s}" for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
            )
            names[host] = (*dns_names, *addresses, *common_names)
        return names

    def placeholder_ca_pem(self) -> bytes:
        """A CA that issued nothing in the world: what a configured CAfile holds when ``trust`` is empty."""
        try:
            return self.pki.ca(PLACEHOLDER_CA).cert_pem
        except KeyError:
            return self.pki.add_ca(PLACEHOLDER_CA, subject="/O=mxharness/CN=trusts nothing", key="ec256").cert_pem

    def trust_pems(self, names: tuple[str, ...] | None) -> dict[str, bytes]:
        """CA name → PEM for Postfix's trust store: ``names``, or every root CA when None."""
        return {n: self.pki.ca(n).cert_pem for n in (self.root_cas if names is None else names)}


def build_world(
    scenario: Scenario, *, now: datetime | None = None, pki: Pki | None = None, keys: KeyPool | None = None
) -> World:
    """Issue the scenario's certificates and lay out its DNS and servers.

    Args:
        scenario: a validated scenario (references already checked by the loader).
        now: the time certificate offsets (``-30d``) count from; default: now (or ``pki``'s reference time).
        pki: certificates already issued for this world (every CA, and the certificates that are to be kept);
            the scenario's other certificates are added to it. Default: issue everything.
        keys: the run's key pool (:class:`~harness.pki.KeyPool`) when ``pki`` is not given; default: new keys.
    """
    pki = _issue(scenario, pki or Pki(now=now or datetime.now(UTC), keys=keys))
    addresses = _addresses(scenario)
    records: list[dict[str, object]] = []
    faults: list[dict[str, str]] = []
    for owner, node in scenario.dns.items():
        name = _fqdn(owner)
        for rtype, value in node.records():
            if rtype in ("A", "AAAA"):
                continue  # from `addresses`, where `auto` is resolved
            if rtype == "TLSA":
                value = _tlsa(value, pki)
            records.append({"name": name, "type": rtype, "value": value, "ttl": 300, "dnssec": node.dnssec})
        for address in addresses.get(name, []):
            rtype = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
            records.append({"name": name, "type": rtype, "value": address, "ttl": 300, "dnssec": node.dnssec})
        faults += [{"name": name, "type": rtype, "fault": fault} for rtype, fault in (node.fault or {}).items()]
    servers: list[dict[str, object]] = []
    files: dict[str, bytes] = {}
    for host, spec in scenario.servers.items():
        targets = [_canonical(host)] if _is_ip(host) else addresses.get(_fqdn(host), [])
        entries, cert_files = server_entries(host, spec, targets, pki)
        servers += entries
        files.update(cert_files)
    roots = tuple(name for name, ca in scenario.pki.cas.items() if ca.issuer is None)
    certs = {host: spec.cert for host, spec in scenario.servers.items() if spec.cert is not None}
    return World(
        pki=pki,
        addresses=addresses,
        records=records,
        servers=servers,
        root_cas=roots,
        files=files,
        server_certs=certs,
        faults=faults,
        dnssec_probe=any(node.dnssec for node in scenario.dns.values()),
        chain_modes={host: spec.chain for host, spec in scenario.servers.items() if spec.cert is not None},
        mx_literals=tuple(sorted(_mx_literals(scenario))),
        names=tuple(sorted(_fqdn(owner) for owner in scenario.dns)),
    )


def build_case_world(
    scenario: Scenario, case: Case, *, shared: World | None = None, now: datetime | None = None
) -> World:
    """The world a case runs in: the scenario's (``shared``, built when not given) when the case changes nothing of
    it; otherwise one built from the case's merged world (:func:`harness.overrides.merged_world`).

    Args:
        shared: the world :func:`build_world` made for ``scenario``. Its CAs, and its certificates whose
            specification the case does not change, are reused, not issued again.
        now: as for :func:`build_world`, when nothing is reused.
    """
    if not case.changes_world:
        return shared if shared is not None else build_world(scenario, now=now)
    merged = merged_world(scenario, case)
    if shared is None:
        return build_world(merged, now=now)
    same = [name for name, spec in merged.pki.certs.items() if scenario.pki.certs.get(name) == spec]
    return build_world(merged, pki=shared.pki.copy(certs=same))


def _issue(scenario: Scenario, pki: Pki) -> Pki:
    """Add the scenario's CAs and certificates that ``pki`` does not hold yet."""
    done: set[str] = set(pki.ca_names)
    pending = {name: ca for name, ca in scenario.pki.cas.items() if name not in done}
    while pending:  # parents before children; the loader has rejected cycles and unknown issuers
        for name, ca in list(pending.items()):
            if ca.issuer is None or ca.issuer in done:
                pki.add_ca(
                    name,
                    subject=ca.subject,
                    issuer=ca.issuer,
                    key=ca.key,
                    not_before=ca.not_before,
                    not_after=ca.not_after,
                )
                done.add(name)
                del pending[name]
    for name, cert in scenario.pki.certs.items():
        if name in pki.cert_names:
            continue
        pki.add_cert(
            name,
            issuer=cert.issuer,
            san=cert.san,
            subject=cert.subject,
            cn=cert.cn,
            key=cert.key,
            not_before=cert.not_before,
            not_after=cert.not_after,
        )
    return pki


def _addresses(scenario: Scenario) -> dict[str, list[str]]:
    """Host → addresses, with each ``auto`` replaced by a documentation address no other host uses."""
    # Canonical text (2001:DB8:0::1 is 2001:db8::1), so that an auto address never equals a written one.
    written = [v for node in scenario.dns.values() for v in (node.A or []) + (node.AAAA or []) if v != "auto"]
    used = {_canonical(v) for v in written}
    used |= {_canonical(h) for h in scenario.servers if _is_ip(h)} | _mx_literals(scenario)
    pools = {
        4: (str(a) for a in AUTO_V4.hosts() if int(a) & 0xFF >= 10),
        6: (str(a) for a in AUTO_V6.hosts()),
    }
    out: dict[str, list[str]] = {}
    for owner, node in scenario.dns.items():
        addrs: list[str] = []
        for family, values in ((4, node.A or []), (6, node.AAAA or [])):
            for value in values:
                if value == "auto":
                    value = next(a for a in pools[family] if a not in used)
                    used.add(value)
                addrs.append(_canonical(value))
        if addrs:
            out[_fqdn(owner)] = addrs
    return out


def _mx_literals(scenario: Scenario) -> set[str]:
    """MX targets written as an IP address (``10 192.0.2.1``: invalid per RFC 5321 §5.1, yet seen)."""
    found = set()
    for node in scenario.dns.values():
        for value in node.MX or []:
            target = value.split()[1]
            if _is_ip(target) and not target.startswith("["):
                found.add(_canonical(target))
    return found


def _tlsa(value: str, pki: Pki) -> str:
    usage, selector, mtype, data = value.split()
    kind, _, ref = data.partition(":")
    if kind in ("cert", "ca") and ref:
        cert = pki.cert(ref).certificate if kind == "cert" else pki.ca(ref).certificate
        data = tlsa_data(cert, selector=int(selector), matching_type=int(mtype))
    return f"{usage} {selector} {mtype} {data}"


def _literal_hosts(servers: list[dict[str, object]]) -> set[str]:
    return {str(s["address"]) for s in servers}


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".")


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address.strip("[]")))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
