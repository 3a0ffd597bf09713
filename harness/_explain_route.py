"""Where Postfix sends a message: transport, next-hop destination, MX hosts and their addresses.

Rules (Postfix 3.7): trivial-rewrite(8) picks the transport and next-hop. A ``transport_maps`` entry is looked up by
the full address, then the domain, then each parent as ``.parent`` (``transport_maps`` is not in
``parent_domain_matches_subdomains``), then ``*`` (transport(5)). Its ``transport:nexthop`` result: an empty
transport keeps the default one; a transport with an empty next-hop resets the next-hop to the recipient domain.
Without an entry the default transport (``default_transport``, default ``smtp``) delivers to its own next-hop
(``default_transport = smtp:[host]``), else to ``relayhost``, else to the recipient domain. ``relay_domains``,
``sender_dependent_*``, ``smtp_fallback_relay`` and ``content_filter`` are not modelled.

The smtp(8) client (``smtp_connect.c``, ``smtp_parse_destination``) strips ``[]`` and ``:port`` from the destination
to get the next-hop domain (what ``nexthop`` means in a match list). ``[host]`` means no MX lookup; otherwise the MX
records are used, in preference order, and without MX records the domain's own address records (the host name is
then the domain). The host name of an MX host is the name as published, not CNAME-expanded
(``smtp_cname_overrides_servername = no``). Addresses follow ``inet_protocols``; at most ``smtp_mx_address_limit``
(5) addresses are tried.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from harness._explain_inputs import CaseInputs, Setting
from harness._explain_maps import lookup

__all__ = ["Address", "MxHost", "Resolution", "Route", "resolve", "route"]

_SERVICES = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465, "lmtp": 24}


@dataclass(frozen=True)
class Route:
    """The transport and next-hop of a message.

    Attributes:
        transport: the master.cf service that delivers (``smtp``).
        destination: the next-hop destination verbatim (``fastmail.fm``, ``[relay.example.net]:587``): the key
            of the TLS policy table lookup.
        nexthop: the destination without ``[]`` and ``:port``.
        port: the TCP port.
        mx_lookup: False for a bracketed destination.
        origin: why this next-hop, in words.
        unsupported: what the model cannot follow (another transport type, several destinations, …), if anything.
    """

    transport: str
    destination: str
    nexthop: str
    port: int
    mx_lookup: bool
    origin: str
    unsupported: str | None = None


@dataclass(frozen=True)
class Address:
    """One address of a host: the text (``auto`` for an address the harness picks at run time) and the server
    listening there (its ``servers`` key; None: nothing listens on the port)."""

    text: str
    server: str | None


@dataclass(frozen=True)
class MxHost:
    """A host Postfix connects to: its name as published (the ``hostname`` of a match list), MX preference (None
    without MX lookup) and addresses."""

    name: str
    preference: int | None
    addresses: tuple[Address, ...]
    note: str = ""


@dataclass(frozen=True)
class Resolution:
    """The hosts of a next-hop, or why there are none.

    Attributes:
        hosts: in the order Postfix tries them (equal preferences are tried in random order).
        failure: ``(status, dsn, reason)`` when the destination does not resolve.
        unsupported: a DNS fault or layout the model does not follow.
    """

    hosts: tuple[MxHost, ...]
    failure: tuple[str, str, str] | None = None
    unsupported: str | None = None


def route(inputs: CaseInputs, recipient: str) -> Route:
    """The transport and next-hop of ``recipient``, with the reason in words."""
    domain = recipient.rpartition("@")[2].lower().rstrip(".")
    default = inputs.param("default_transport")
    def_transport, _, def_nexthop = default.value.partition(":")
    unsupported = None
    not_modelled = ("sender_dependent_relayhost_maps", "sender_dependent_default_transport_maps", "content_filter")
    for name in (*not_modelled, "relay_domains", "smtp_fallback_relay"):
        if inputs.param(name).value:
            unsupported = f"{name} is not modelled"
    if re.search(r"content_filter\s*=\s*[^\s}]", inputs.master_cf):
        unsupported = "a master.cf content_filter is not modelled"
    tables = inputs.param("transport_maps")
    transport, nexthop, origin = def_transport, "", ""
    if tables.value:
        found = None
        for key in _transport_keys(recipient, domain):
            result = lookup(tables.value, key, inputs.maps)
            if result.unsupported:
                unsupported = f"transport_maps {result.unsupported}"
                break
            if result.entry:
                found = result.entry
                break
        if found is not None:
            t, _, n = found.value.partition(":")
            origin = f"transport_maps entry {found.describe()}"
            if t:
                transport, nexthop = t, n or domain
            else:
                nexthop = n
    if not nexthop:
        relayhost = inputs.param("relayhost")
        if def_nexthop:
            nexthop, origin = def_nexthop, origin or f"the default transport's next-hop ({_said(default)})"
        elif relayhost.value:
            nexthop, origin = relayhost.value, origin or f"relayhost ({_said(relayhost)})"
        else:
            nexthop = domain
            origin = origin or "the recipient domain (no transport_maps entry, relayhost empty)"
    first, *more = nexthop.replace(",", " ").split()
    if more:
        unsupported = f"several next-hop destinations ({nexthop}): only the first is modelled"
    host, port = _parse_destination(first)
    if transport not in ("smtp", "relay") and inputs.service(transport) is None:
        unsupported = f"transport {transport} is not an smtp(8) service of the scenario"
    return Route(
        transport=transport,
        destination=first,
        nexthop=host,
        port=port,
        mx_lookup=not first.startswith("["),
        origin=origin,
        unsupported=unsupported,
    )


def resolve(inputs: CaseInputs, rt: Route) -> Resolution:
    """The hosts and addresses Postfix tries for ``rt``, from the scenario's DNS, or the failure Postfix reports."""
    name = rt.nexthop.lower().rstrip(".")
    if _is_ip(name):
        return Resolution((MxHost(name, None, (_address(inputs, name, rt.port),)),))
    faults = _faults(inputs, name)
    if faults:
        return Resolution((), unsupported=f"DNS fault {faults} on {name}")
    node = inputs.dns.get(name)
    if not rt.mx_lookup or node is None or not node.MX:
        if rt.mx_lookup and node is None:
            return Resolution(
                (), failure=("bounced", "5.4.4", f"Host or domain name not found. Name service error for name={name}")
            )
        host = _host(inputs, name, None, rt.port)
        if isinstance(host, str):
            return Resolution((), unsupported=host)
        if not host.addresses:
            return Resolution(
                (), failure=("bounced", "5.4.4", f"Host or domain name not found ({name} has no address)")
            )
        return Resolution((host,))
    records = sorted((int(p), t.lower().rstrip(".")) for p, t in (v.split() for v in node.MX))
    hosts: list[MxHost] = []
    for pref, target in records:
        h = _host(inputs, target, pref, rt.port)
        if isinstance(h, str):
            return Resolution((), unsupported=h)
        if h.addresses:
            hosts.append(h)
    if not hosts:
        return Resolution((), failure=("bounced", "5.4.4", f"no MX host for {name} has a valid address record"))
    return Resolution(_limit(hosts, int(inputs.param("smtp_mx_address_limit").value or 5)))


def _host(inputs: CaseInputs, name: str, pref: int | None, port: int) -> MxHost | str:
    """A host with its addresses (CNAMEs followed), or the reason the model cannot tell."""
    if _is_ip(name):
        return MxHost(name, pref, (_address(inputs, name, port),), note="an IP address as MX target")
    owner, seen = name, set()
    while True:
        if _faults(inputs, owner):
            return f"DNS fault on {owner}"
        node = inputs.dns.get(owner)
        if node is None or not node.CNAME or owner in seen:
            break
        seen.add(owner)
        owner = node.CNAME[0].lower().rstrip(".")
    if node is None:
        return MxHost(name, pref, ())
    protocols = inputs.param("inet_protocols").value.replace(",", " ").split()
    v4 = "all" in protocols or "ipv4" in protocols
    v6 = "all" in protocols or "ipv6" in protocols
    values = [*(node.A or [] if v4 else []), *(node.AAAA or [] if v6 else [])]
    addresses = []
    for value in values:
        if value == "auto":
            server = _server_key(inputs, owner)
            addresses.append(Address("auto", server if _listens(inputs, server, port) else None))
        else:
            addresses.append(_address(inputs, value, port, owner=owner))
    note = f"CNAME → {owner}" if owner != name else ""
    return MxHost(name, pref, tuple(addresses), note=note)


def _address(inputs: CaseInputs, text: str, port: int, *, owner: str | None = None) -> Address:
    """The server at a written address: one keyed by that address, else the owner's, if it listens on ``port``."""
    canonical = str(ipaddress.ip_address(text))
    server = canonical if canonical in inputs.servers else (_server_key(inputs, owner) if owner else None)
    return Address(canonical, server if _listens(inputs, server, port) else None)


def _server_key(inputs: CaseInputs, owner: str) -> str | None:
    return owner if owner in inputs.servers else None


def _listens(inputs: CaseInputs, server: str | None, port: int) -> bool:
    return server is not None and port in inputs.servers[server].ports


def _limit(hosts: list[MxHost], limit: int) -> tuple[MxHost, ...]:
    """At most ``limit`` addresses in all (``smtp_mx_address_limit``)."""
    out: list[MxHost] = []
    left = limit
    for host in hosts:
        if left <= 0:
            break
        out.append(MxHost(host.name, host.preference, host.addresses[:left], host.note))
        left -= len(host.addresses)
    return tuple(out)


def _faults(inputs: CaseInputs, owner: str) -> str:
    node = inputs.dns.get(owner)
    return ", ".join(f"{t}: {f}" for t, f in (node.fault or {}).items()) if node is not None and node.fault else ""


def _transport_keys(recipient: str, domain: str) -> list[str]:
    keys = [recipient.lower(), domain]
    parent = domain
    while "." in parent:
        parent = parent.split(".", 1)[1]
        keys.append("." + parent)
    keys.append("*")
    return keys


def _parse_destination(dest: str) -> tuple[str, int]:
    """``[host]:port`` → (host, port) (``smtp_parse_destination``; a service name is looked up as services(5))."""
    host, port = dest, "smtp"
    if dest.startswith("[") and "]" in dest:
        host, _, rest = dest[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "smtp"
    elif dest.count(":") == 1:
        host, _, port = dest.partition(":")
    return host.lower().rstrip("."), int(port) if port.isdigit() else _SERVICES.get(port, 25)


def _said(setting: Setting) -> str:
    return setting.describe()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
