"""The TLS policy of one delivery: security level, match list, SNI name and protocols, and where each came from.

Postfix 3.7 ``src/smtp/smtp_tls_policy.c`` (``policy_create``, ``tls_policy_lookup``, ``global_tls_level``):

* The global level is ``smtp_tls_security_level``; when it is empty, the obsolete ``smtp_enforce_tls`` (then
  ``verify`` if ``smtp_tls_enforce_peername``, else ``encrypt``) or ``smtp_use_tls`` (``may``), else ``none``. A
  master.cf ``-o`` of the delivering service overrides main.cf for that service.
* ``smtp_tls_policy_maps`` is looked up with the next-hop destination verbatim (``[host]:port`` included). Only for a
  destination that is a plain host name are parent domains tried, as ``.parent`` keys
  (``example.com`` → ``.com``), until an entry answers. An entry overrides the global level.
* The entry is ``level attribute=value …`` (white space or commas between). ``match=`` is valid only at
  ``fingerprint`` (digests, ``|`` between) and ``verify``/``secure`` (names, ``:`` between; several ``match=``
  add up). An unknown attribute, a repeated one, an empty value or ``match=`` at another level makes the entry
  invalid: Postfix logs a warning and defers with ``4.7.5 client TLS configuration problem``. At ``none`` the
  attributes are ignored.
* Without ``match=``: ``smtp_tls_verify_cert_match`` (``hostname``) at ``verify``, ``smtp_tls_secure_cert_match``
  (``nexthop, dot-nexthop``) at ``secure``, ``smtp_tls_fingerprint_cert_match`` at ``fingerprint`` (none there is
  an error, as above).
* ``dane``/``dane-only`` need ``smtp_dns_support_level = dnssec``; without it ``dane`` is ``may`` and ``dane-only``
  a configuration problem. With DNSSEC the level stays (mandatory protocols, SNI the MX host name) and what it
  becomes for each MX host is :mod:`harness._explain_dane`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness._explain_dane import DaneHost
from harness._explain_inputs import CaseInputs, Setting
from harness._explain_maps import MapEntry, lookup
from harness._explain_route import Route
from harness.postfix import SmtpService

__all__ = ["LEVELS", "TlsPolicy", "level_rank", "tls_policy"]

#: Postfix's security levels in increasing order (``src/tls/tls.h``; ``halfdane`` is internal).
LEVELS = ("none", "may", "encrypt", "fingerprint", "dane", "dane-only", "verify", "secure")
_ATTRIBUTES = ("ciphers", "protocols", "servername", "match", "exclude", "tafile", "connection_reuse")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$")


def level_rank(level: str) -> int:
    """The position of ``level`` in :data:`LEVELS` (-1 for anything else)."""
    return LEVELS.index(level) if level in LEVELS else -1


@dataclass(frozen=True)
class TlsPolicy:
    """The effective TLS policy of a delivery.

    Attributes:
        level: the security level, or ``invalid`` (``problem`` says why).
        level_origin: where the level came from, in words.
        global_level: the level main.cf (or the service's ``-o``) gives, and where from.
        entry: the policy table entry that applied, if any; ``keys`` are the keys Postfix looked up, in order, in
            ``tables`` (the value of ``smtp_tls_policy_maps``; empty: no policy table).
        match: the match list (names at ``verify``/``secure``, digests at ``fingerprint``).
        match_origin: where it came from.
        servername: the SNI name setting (empty: no SNI; ``hostname``, ``nexthop`` or a name).
        protocols: the TLS protocols setting in force at this level.
        ciphers: the entry's ``ciphers=`` (a cipher grade; empty: main.cf's grade for the level applies).
        exclude: the entry's ``exclude=`` (None: main.cf's exclusion lists apply; it replaces them).
        problem: the warning Postfix logs for an invalid policy.
        unsupported: what the model does not follow, if anything.
        service: the master.cf service that delivers (None: the image's own ``smtp``/``relay``).
        dane: at ``dane``/``dane-only``, what DANE makes of the MX host of one attempt (set by the attempt).
    """

    level: str
    level_origin: str
    global_level: Setting
    entry: MapEntry | None
    keys: tuple[str, ...]
    tables: str = ""
    match: tuple[str, ...] = ()
    match_origin: str = ""
    servername: str = ""
    servername_origin: str = ""
    protocols: str = ""
    ciphers: str = ""
    exclude: str | None = None
    problem: str | None = None
    unsupported: str | None = None
    service: SmtpService | None = None
    dane: DaneHost | None = None


def tls_policy(inputs: CaseInputs, rt: Route) -> TlsPolicy:
    """The TLS policy Postfix 3.7 computes for next-hop ``rt`` (see the module docstring for the rules)."""
    service = inputs.service(rt.transport)

    def param(name: str) -> Setting:
        return inputs.param(name, service)

    glob = _global_level(inputs, service)
    keys = _keys(rt.destination)
    base = TlsPolicy(level=glob.value, level_origin=glob.origin, global_level=glob, entry=None, keys=keys)
    base = _with(base, service=service)
    if glob.value not in LEVELS:
        return _with(base, level="invalid", unsupported=f"invalid {glob.describe()}: Postfix would not start")
    maps = param("smtp_tls_policy_maps")
    base = _with(base, tables=maps.value)
    entry = None
    if maps.value:
        for key in keys:
            found = lookup(maps.value, key, inputs.maps, config_directory=param("config_directory").value)
            if found.unsupported:
                return _with(base, unsupported=f"smtp_tls_policy_maps {found.unsupported}")
            if found.entry:
                entry = found.entry
                break
    elif param("smtp_tls_per_site").value:
        return _with(base, unsupported="smtp_tls_per_site (obsolete) is not modelled")
    policy = base
    attrs: dict[str, list[str]] = {}
    if entry is not None:
        policy, attrs = _apply_entry(base, entry, maps)
        if policy.level == "invalid":
            return policy
    return _complete(policy, attrs, param)


def _global_level(inputs: CaseInputs, service: SmtpService | None) -> Setting:
    level = inputs.param("smtp_tls_security_level", service)
    if level.value:
        return Setting(level.name, level.value.lower(), level.origin)
    enforce = inputs.param("smtp_enforce_tls", service)
    if _yes(enforce.value):
        peername = inputs.param("smtp_tls_enforce_peername", service)
        value = "verify" if _yes(peername.value) else "encrypt"
        return Setting(level.name, value, f"{enforce.describe()} and {peername.describe()}, obsolete")
    use = inputs.param("smtp_use_tls", service)
    if _yes(use.value):
        return Setting(level.name, "may", f"{use.describe()}, obsolete")
    return Setting(level.name, "none", f"{level.origin}: empty, and smtp_use_tls/smtp_enforce_tls are off")


def _keys(destination: str) -> tuple[str, ...]:
    """The policy table keys Postfix tries (``tls_policy_lookup``): the destination, then ``.parent`` keys for a
    plain host name."""
    keys = [destination.lower()]
    if _valid_hostname(destination):
        name = destination.lower()
        while "." in name[1:]:
            name = name[name.index(".", 1) :]
            keys.append(name)
    return tuple(keys)


def _apply_entry(base: TlsPolicy, entry: MapEntry, maps: Setting) -> tuple[TlsPolicy, dict[str, list[str]]]:
    """The entry's level and attributes (``tls_policy_lookup_one``); ``invalid`` with Postfix's warning."""
    where = f'{maps.value}, next-hop destination "{base.keys[0]}"'
    exact = entry.key.lower() == base.keys[0]
    said = f"policy table entry {entry.describe()}" + ("" if exact else f", a parent-domain entry for {base.keys[0]}")
    tokens = [t for t in re.split(r"[,\s]+", entry.value) if t]
    if not tokens:
        return _invalid(base, entry, said, f"{where}: invalid empty policy"), {}
    level = tokens[0].lower()
    if level not in LEVELS:
        return _invalid(base, entry, said, f'{where}: invalid security level "{tokens[0]}"'), {}
    policy = _with(base, level=level, level_origin=said, entry=entry)
    attrs: dict[str, list[str]] = {}
    if level == "none":
        return policy, attrs
    for token in tokens[1:]:
        name, eq, value = token.partition("=")
        name = name.lower()
        if not eq or not name:
            return _invalid(policy, entry, said, f'{where}: malformed attribute/value pair "{token}"'), {}
        if name not in _ATTRIBUTES:
            return _invalid(policy, entry, said, f'{where}: invalid attribute name: "{name}"'), {}
        if name in attrs and name not in ("match", "tafile", "connection_reuse"):
            return _invalid(policy, entry, said, f'{where}: attribute "{name}" is specified multiple times'), {}
        if not value and name in ("ciphers", "match", "tafile"):
            return _invalid(policy, entry, said, f'{where}: attribute "{name}" has empty value'), {}
        if name == "match" and level not in ("fingerprint", "verify", "secure"):
            return _invalid(policy, entry, said, f'{where}: attribute "match" invalid at security level "{level}"'), {}
        if name == "servername" and not _valid_hostname(value):
            return _invalid(policy, entry, said, f'{where}: "servername={value}" specifies an invalid hostname'), {}
        attrs.setdefault(name, []).append(value)
    if "tafile" in attrs:
        return _with(policy, unsupported="tafile= is not modelled"), attrs
    return policy, attrs


def _complete(policy: TlsPolicy, attrs: dict[str, list[str]], get: Callable[[str], Setting]) -> TlsPolicy:
    """Defaults for what the entry did not say: DANE fallback, protocols, SNI, match list."""
    level = policy.level
    if level != "none":  # ``ciphers=`` and ``exclude=`` (set_cipher_grade in smtp_tls_policy.c)
        policy = _with(
            policy, ciphers=attrs.get("ciphers", [""])[0], exclude=attrs["exclude"][0] if "exclude" in attrs else None
        )
    if level in ("dane", "dane-only"):
        support = get("smtp_dns_support_level")
        if support.value != "dnssec":
            if level == "dane-only":
                return _with(policy, level="invalid", problem=f"{level} configured with dnssec lookups disabled")
            policy = _with(
                policy,
                level="may",
                level_origin=f"{policy.level_origin}; dane without {support.describe()} falls back to may",
            )
        else:
            return _with(
                policy,
                protocols=get("smtp_tls_mandatory_protocols").value,
                servername="hostname",
                servername_origin="at DANE levels Postfix sends the TLSA base domain, the MX host name",
            )
        level = "may"
    if level == "none":
        return policy
    proto_param = "smtp_tls_protocols" if level == "may" else "smtp_tls_mandatory_protocols"
    protocols = attrs["protocols"][0] if "protocols" in attrs else get(proto_param).value
    sni = get("smtp_tls_servername")
    if "servername" in attrs:
        servername, sni_origin = attrs["servername"][0], "servername= of the policy table entry"
    else:
        servername, sni_origin = sni.value, sni.origin
    policy = _with(policy, protocols=protocols, servername=servername, servername_origin=sni_origin)
    if level == "fingerprint":
        if "match" in attrs:
            values = tuple(v for m in attrs["match"] for v in m.split("|") if v)
            return _with(policy, match=values, match_origin="match= of the policy table entry")
        setting = get("smtp_tls_fingerprint_cert_match")
        values = tuple(v for v in re.split(r"[,\s]+", setting.value) if v)
        if not values:
            return _with(
                policy,
                level="invalid",
                problem="configured at fingerprint security level, but with no fingerprints to match",
            )
        return _with(policy, match=values, match_origin=setting.describe())
    if level in ("verify", "secure"):
        if "match" in attrs:
            names = tuple(v for m in attrs["match"] for v in m.split(":") if v)
            return _with(policy, match=names, match_origin="match= of the policy table entry")
        setting = get("smtp_tls_verify_cert_match" if level == "verify" else "smtp_tls_secure_cert_match")
        names = tuple(v for v in re.split(r"[,\s:]+", setting.value) if v)
        return _with(policy, match=names, match_origin=setting.describe())
    return policy


def _invalid(policy: TlsPolicy, entry: MapEntry, said: str, warning: str) -> TlsPolicy:
    return _with(policy, level="invalid", level_origin=said, entry=entry, problem=warning)


def _with(policy: TlsPolicy, **changes: object) -> TlsPolicy:
    return replace(policy, **changes)  # type: ignore[arg-type]


def _valid_hostname(name: str) -> bool:
    return bool(_HOSTNAME.match(name)) and not all(p.isdigit() for p in name.rstrip(".").split("."))


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1")
