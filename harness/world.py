"""The concrete world of a scenario: certificates issued, ``auto`` addresses chosen, TLSA data computed.

:func:`build_world` turns the scenario's ``pki``, ``dns`` and ``servers`` into what the pod needs: the peer's
world spec (``/world/world.json`` and the PEM files it names, see :mod:`harness.peer`) and the PEM of every CA for
Postfix's trust store. Certificates are made fresh at every run (scenario-format.md, ``pki``); nothing is
committed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from harness.model import Scenario
from harness.pki import Pki, format_dn, tlsa_data

__all__ = ["World", "build_world"]

#: ``A: auto`` picks from TEST-NET-1 (RFC 5737), ``AAAA: auto`` from the documentation prefix (RFC 3849).
AUTO_V4 = ipaddress.ip_network("192.0.2.0/24")
AUTO_V6 = ipaddress.ip_network("2001:db8::/64")
WORLD_DIR = "/world"
#: Name of the CA installed when a scenario names a CAfile but trusts no CA (not a valid scenario CA name).
PLACEHOLDER_CA = "mxharness trusts nothing"


@dataclass(frozen=True)
class World:
    """Everything a case's pod needs of the scenario's world.

    Attributes:
        pki: the issued CAs and certificates.
        addresses: host name (lower case, no trailing dot) → its A/AAAA addresses, ``auto`` resolved.
        records: the DNS records as the peer serves them: dicts ``{name, type, value, ttl}``.
        servers: the peer's SMTP endpoints: dicts ``{host, address, port, cert_chain, key}``.
        server_certs: server host → the ``pki.certs`` name it presents.
        root_cas: names of the self-signed CAs (the default trust of ``postfix.trust``).
    """

    pki: Pki
    addresses: dict[str, list[str]]
    records: list[dict[str, object]]
    servers: list[dict[str, object]]
    root_cas: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    server_certs: dict[str, str] = field(default_factory=dict)

    def peer_files(self) -> dict[str, bytes]:
        """The files to copy into the peer container: ``/world/world.json`` and the certificate files."""
        bound = sorted({a for addrs in self.addresses.values() for a in addrs} | _literal_hosts(self.servers))
        spec = {
            "version": 1,
            "dns": {"listen": "127.0.0.53", "port": 53, "records": self.records},
            "addresses": bound,
            "servers": self.servers,
        }
        return {f"{WORLD_DIR}/world.json": json.dumps(spec, indent=1).encode(), **self.files}

    def server_chains(self) -> dict[str, tuple[str, ...]]:
        """Server host → the subjects (OpenSSL one-line form, as Postfix logs them) of the chain it presents:
        leaf first, then each intermediate. Hosts without a certificate are absent."""
        chains: dict[str, tuple[str, ...]] = {}
        for host, name in self.server_certs.items():
            cert = self.pki.cert(name)
            chain = [cert.certificate, *(ca.certificate for ca in cert.intermediates)]
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


def build_world(scenario: Scenario, *, now: datetime | None = None) -> World:
    """Issue the scenario's certificates and lay out its DNS and servers.

    Args:
        scenario: a validated scenario (references already checked by the loader).
        now: the time certificate offsets (``-30d``) count from; default: now.
    """
    pki = _issue(scenario, now or datetime.now(UTC))
    addresses = _addresses(scenario)
    records: list[dict[str, object]] = []
    for owner, node in scenario.dns.items():
        name = _fqdn(owner)
        for rtype, value in node.records():
            if rtype in ("A", "AAAA"):
                continue  # from `addresses`, where `auto` is resolved
            if rtype == "TLSA":
                value = _tlsa(value, pki)
            records.append({"name": name, "type": rtype, "value": value, "ttl": 300})
        for address in addresses.get(name, []):
            rtype = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
            records.append({"name": name, "type": rtype, "value": address, "ttl": 300})
    servers: list[dict[str, object]] = []
    files: dict[str, bytes] = {}
    for host, spec in scenario.servers.items():
        chain = key = None
        if spec.cert is not None:
            issued = pki.cert(spec.cert)
            chain, key = f"tls/{spec.cert}.pem", f"tls/{spec.cert}.key"
            files[f"{WORLD_DIR}/{chain}"] = issued.chain_pem
            files[f"{WORLD_DIR}/{key}"] = issued.key_pem
        targets = [_canonical(host)] if _is_ip(host) else addresses.get(_fqdn(host), [])
        for address in targets:
            for port in spec.ports:
                servers.append({"host": host, "address": address, "port": port, "cert_chain": chain, "key": key})
    roots = tuple(name for name, ca in scenario.pki.cas.items() if ca.issuer is None)
    certs = {host: spec.cert for host, spec in scenario.servers.items() if spec.cert is not None}
    return World(
        pki=pki, addresses=addresses, records=records, servers=servers, root_cas=roots, files=files, server_certs=certs
    )


def _issue(scenario: Scenario, now: datetime) -> Pki:
    pki = Pki(now=now)
    done: set[str] = set()
    pending = dict(scenario.pki.cas)
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
    used |= {_canonical(h) for h in scenario.servers if _is_ip(h)}
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
