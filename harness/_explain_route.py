"""Where Postfix sends a message: transport, next-hop destination, MX hosts and their addresses.

Rules (Postfix 3.7): a content filter comes first. ``content_filter`` (main.cf, or a ``-o content_filter=`` of the
master.cf service that receives the message: ``pickup`` for mail sent with sendmail, the ``smtpd`` on port 25 for
mail ``via: smtp``; an empty ``-o`` switches it off) sends the message to its ``transport:nexthop`` instead of the
recipient's route (cleanup(8) records it, qmgr(8) uses it before ``transport_maps``); the filter's own delivery is the
attempt Postfix logs first (postconf(5) ``content_filter``, FILTER_README).

Otherwise trivial-rewrite(8) picks the transport and next-hop from the recipient domain's address class
(ADDRESS_CLASS_README): a domain in ``mydestination``, ``virtual_alias_domains`` or ``virtual_mailbox_domains`` is
not delivered by smtp(8) (not modelled); one in ``relay_domains`` (default ``$mydestination`` below
``compatibility_level`` 2; a parent also matches its subdomains, ``parent_domain_matches_subdomains``) uses
``relay_transport``; any other uses ``default_transport``. A ``transport_maps`` entry is looked up by the full
address, then the domain, then each parent as ``.parent`` (``transport_maps`` is not in
``parent_domain_matches_subdomains``), then ``*`` (transport(5)). Its ``transport:nexthop`` result: an empty
transport keeps the class's one; a transport with an empty next-hop resets the next-hop to the recipient domain.
Without an entry the transport (``default_transport``, default ``smtp``; ``relay_transport``, default ``relay``)
delivers to its own next-hop (``default_transport = smtp:[host]``), else to ``relayhost``, else to the recipient
domain. ``sender_dependent_*`` and ``smtp_fallback_relay`` are not modelled, nor are tables that may rewrite the
recipient or redirect the message (``virtual_alias_maps``, ``canonical_maps``, ``recipient_canonical_maps`` with an
entry for the address or its ``@domain``; ``header_checks``/``body_checks`` and, for mail via smtp, the access
tables of the ``smtpd_*_restrictions`` with any entry; ``smtpd_proxy_filter``).

The smtp(8) client (``smtp_connect.c``, ``smtp_parse_destination``) strips ``[]`` and ``:port`` from the destination
to get the next-hop domain (what ``nexthop`` means in a match list). ``[host]`` means no MX lookup; otherwise the MX
records are used, in preference order, and without MX records the domain's own address records (the host name is
then the domain). The host name of an MX host is the name as published, not CNAME-expanded
(``smtp_cname_overrides_servername = no``). Addresses follow ``inet_protocols``; at most ``smtp_mx_address_limit``
(5) addresses are tried.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from harness._explain_inputs import CaseInputs, Setting
from harness._explain_maps import FILE_TYPES, lookup, table_entries, table_refs
from harness.postfix import SmtpService

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
        content_filter: the ``content_filter`` setting that sent the message to this next-hop (None: the
            recipient's own route).
        note: something the reader should know about the route (a content filter switched off for this message).
    """

    transport: str
    destination: str
    nexthop: str
    port: int
    mx_lookup: bool
    origin: str
    unsupported: str | None = None
    content_filter: Setting | None = None
    note: str = ""


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


def route(inputs: CaseInputs, recipient: str, via: str = "sendmail") -> Route:
    """The transport and next-hop of ``recipient``'s message sent ``via`` ``sendmail`` or ``smtp``, with the reason
    in words."""
    domain = recipient.rpartition("@")[2].lower().rstrip(".")
    receiver = inputs.receiver(via)
    unsupported = _not_modelled(inputs, recipient, domain, via, receiver)
    filtered = _content_filter(inputs, via, receiver)
    if isinstance(filtered, Setting):
        return _filter_route(inputs, filtered, unsupported, via)
    note = filtered
    klass, transport_setting = _address_class(inputs, domain)
    if klass not in ("default", "relay"):
        unsupported = unsupported or klass
        transport_setting = inputs.param("default_transport")
    def_transport, _, def_nexthop = transport_setting.value.partition(":")
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
            nexthop, origin = def_nexthop, origin or f"the transport's own next-hop ({_said(transport_setting)})"
        elif relayhost.value:
            nexthop, origin = relayhost.value, origin or f"relayhost ({_said(relayhost)})"
        else:
            nexthop = domain
            origin = origin or "the recipient domain (no transport_maps entry, relayhost empty)"
    if klass == "relay" and not origin.startswith("transport_maps"):
        origin += f"; {domain} is in relay_domains: {_said(transport_setting)}"
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
        note=note,
    )


def _content_filter(inputs: CaseInputs, via: str, receiver: SmtpService | None) -> Setting | str:
    """The ``content_filter`` in force for a message received by ``receiver``, or "" (none) / a note saying why
    there is none although main.cf sets one."""
    setting = inputs.param("content_filter", receiver)
    if setting.value.strip():
        return setting
    configured = inputs.param("content_filter")
    if configured.value.strip() and receiver is not None:
        return f"no content filter for mail received by {_RECEIVERS[via]}: {setting.origin}, over {_said(configured)}"
    return ""


_RECEIVERS = {"sendmail": "pickup (sent with sendmail)", "smtp": "smtpd (via smtp)"}


def _filter_route(inputs: CaseInputs, setting: Setting, unsupported: str | None, via: str) -> Route:
    """The next-hop of the content filter ``transport:nexthop`` (``smtp-amavis:[127.0.0.1]:10024``)."""
    transport, _, nexthop = setting.value.strip().partition(":")
    host, port = _parse_destination(nexthop) if nexthop else ("", 25)
    said = f"content filter ({_said(setting)})"
    if not nexthop or "," in nexthop or " " in nexthop:
        unsupported = unsupported or f"{said}: a filter without one next-hop is not modelled"
    elif transport not in ("smtp", "relay") and inputs.service(transport) is None:
        unsupported = unsupported or f"{said}: transport {transport} is not an smtp(8) service of master.cf"
    return Route(
        transport=transport or "smtp",
        destination=nexthop,
        nexthop=host,
        port=port,
        mx_lookup=not nexthop.startswith("["),
        origin=f"the {said} of mail received by {_RECEIVERS.get(via, via)}: the message goes to the filter first",
        unsupported=unsupported,
        content_filter=setting,
    )


def _address_class(inputs: CaseInputs, domain: str) -> tuple[str, Setting]:
    """``("default"|"relay", transport setting)``, or why the class is one the model does not follow."""
    for name, what in (
        ("mydestination", "local delivery"),
        ("virtual_alias_domains", "a virtual alias domain"),
        ("virtual_mailbox_domains", "virtual mailbox delivery"),
        ("relay_domains", ""),
    ):
        setting = inputs.param(name)
        matched = _domain_listed(inputs, name, setting.value, domain)
        if matched is None:
            continue
        if matched.startswith("?"):
            return f"{name} ({_said(setting)}): {matched[1:]} is not modelled", setting
        if not what:
            return "relay", inputs.param("relay_transport")
        return f"{domain} is in {name} ({_said(setting)}): {what} is not modelled", setting
    return "default", inputs.param("default_transport")


def _domain_listed(inputs: CaseInputs, name: str, value: str, domain: str, depth: int = 0) -> str | None:
    """Whether ``domain`` is in the domain list ``value`` of parameter ``name`` (``match_list``: names, ``.domain``,
    ``!`` negation, ``/file`` of patterns, ``type:table``): the pattern that matched; None; or ``?why`` when a
    table the model cannot read decides."""
    parents = name in inputs.param("parent_domain_matches_subdomains").value.replace(",", " ").split()
    for pattern in table_refs(value):
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").lower()
        if pattern.startswith("/") and depth < 5:
            if pattern not in inputs.maps:
                return f"?the file {pattern}"
            inner = " ".join(line.split("#", 1)[0] for line in inputs.maps[pattern].splitlines())
            found = _domain_listed(inputs, name, inner, domain, depth + 1)
            if found is not None:
                return None if negated else found
            continue
        if ":" in pattern and not pattern.startswith("["):
            kind, _, path = pattern.partition(":")
            if kind not in (*FILE_TYPES, "inline") or (kind != "inline" and path not in inputs.maps):
                return f"?the table {pattern}"
            # match_hostname(): the name, then each parent: as "parent" for parent_domain_matches_subdomains
            # parameters, else as ".parent".
            labels = domain.split(".")
            keys = [
                domain,
                *((p if parents else "." + p) for p in (".".join(labels[i:]) for i in range(1, len(labels)))),
            ]
            if any(lookup(pattern, key, inputs.maps).entry for key in keys):
                return None if negated else pattern
            continue
        hit = (
            domain == pattern.rstrip(".")
            or (pattern.startswith(".") and domain.endswith(pattern))
            or (parents and domain.endswith("." + pattern))
        )
        if hit:
            return None if negated else pattern
    return None


_REWRITING = ("canonical_maps", "recipient_canonical_maps", "virtual_alias_maps")
_CONTENT_CHECKS = ("header_checks", "mime_header_checks", "nested_header_checks", "body_checks")
_SMTPD_RESTRICTIONS = tuple(
    f"smtpd_{stage}_restrictions" for stage in ("client", "helo", "sender", "relay", "recipient", "data", "end_of_data")
)


def _not_modelled(
    inputs: CaseInputs, recipient: str, domain: str, via: str, receiver: SmtpService | None
) -> str | None:
    """What of the configuration may change where the message goes in ways the model does not follow."""
    for name in ("sender_dependent_relayhost_maps", "sender_dependent_default_transport_maps", "smtp_fallback_relay"):
        if inputs.param(name).value:
            return f"{name} is not modelled"
    for name in _REWRITING:
        for ref in table_refs(inputs.param(name, receiver).value):
            kind, _, path = ref.partition(":")
            if kind in FILE_TYPES and path in inputs.maps:
                keys = (recipient.lower(), f"@{domain}")
                if any(lookup(ref, key, inputs.maps).entry for key in keys):
                    return f"{name} ({ref}) rewrites {recipient}: not modelled"
            elif kind != "inline" or "=" in ref:
                return f"{name} ({ref}) may rewrite the recipient: not modelled"
    checked = [*_CONTENT_CHECKS, *(_SMTPD_RESTRICTIONS if via == "smtp" else ())]
    for name in checked:
        setting = inputs.param(name, receiver)
        for ref in table_refs(setting.value):
            kind, _, path = ref.partition(":")
            if kind in FILE_TYPES and path in inputs.maps and not table_entries(inputs.maps[path]):
                continue
            if ":" in ref and not ref.startswith("["):
                return f"{name} ({ref}) may redirect, hold or filter the message: not modelled"
    if via == "smtp" and inputs.param("smtpd_proxy_filter", receiver).value:
        return "smtpd_proxy_filter (a before-queue filter) is not modelled"
    return None


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
