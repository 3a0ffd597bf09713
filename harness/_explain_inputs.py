"""What the TLS model reads of a case: its Postfix configuration (with where each value came from) and its world.

Pure data, built from the scenario alone: nothing is issued, resolved or started. The configuration is the one the
pod runs, as :func:`harness.postfix.settings_for` makes it: without a configuration folder, what the harness writes
into the case's main.cf (:data:`harness.postfix.HARNESS_MAIN_CF`, ``compatibility_level``, then the scenario's, then
the case's ``main.cf``); with one (``postfix.config_dir``, ``run --postfix-config``), the folder's main.cf, master.cf
and maps neutralised for the pod (:func:`harness.postfix_neutralise.neutralise`, which keeps a content filter that a
scenario server plays), with the scenario's and the case's keys on top. For the rest, Postfix's built-in defaults
(``postconf -d`` of the images, ``src/global/mail_params.h``) of the parameters the model uses, including those that
follow ``compatibility_level`` (a folder's main.cf from before Postfix 3.0 has none: level 0). ``$name`` and
``${name}`` in values are expanded as Postfix does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from harness._explain_trust import symbolic
from harness.model import Case, CaSpec, CertSpec, DnsNode, Scenario, ServerSpec
from harness.overrides import host_key, merged_world, owner_key
from harness.postfix import (
    DEFAULT_HOSTNAME,
    HARNESS_MAIN_CF,
    TRUST_FILE,
    PostfixSettings,
    SmtpService,
    merge_master_cf,
    settings_for,
    smtp_services,
)
from harness.postfix_config import ConfigFolderError, config_for, master_entries
from harness.releases import DEFAULT_RELEASE, suite_for_release

__all__ = ["POSTFIX_DEFAULTS", "CaseInputs", "Setting", "case_inputs"]

#: Postfix 3.7 built-in defaults (``postconf -d``) of the parameters the model reads.
POSTFIX_DEFAULTS: dict[str, str] = {
    "smtp_tls_security_level": "",
    "smtp_use_tls": "no",
    "smtp_enforce_tls": "no",
    "smtp_tls_enforce_peername": "yes",
    "smtp_tls_policy_maps": "",
    "smtp_tls_per_site": "",
    "smtp_tls_verify_cert_match": "hostname",
    "smtp_tls_secure_cert_match": "nexthop, dot-nexthop",
    "smtp_tls_fingerprint_cert_match": "",
    # "${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}"; the harness sets compatibility_level = 3.6.
    "smtp_tls_fingerprint_digest": "sha256",
    "smtp_tls_servername": "",
    "smtp_tls_protocols": ">=TLSv1",
    "smtp_tls_mandatory_protocols": ">=TLSv1",
    "smtp_tls_wrappermode": "no",
    "smtp_tls_ciphers": "medium",
    "smtp_tls_mandatory_ciphers": "medium",
    "smtp_tls_exclude_ciphers": "",
    "smtp_tls_mandatory_exclude_ciphers": "",
    "smtp_tls_CAfile": "",
    "smtp_tls_CApath": "",
    "smtp_tls_cert_file": "",
    "smtp_tls_key_file": "$smtp_tls_cert_file",
    "smtp_dns_support_level": "",
    "smtp_cname_overrides_servername": "no",
    "smtp_mx_address_limit": "5",
    "transport_maps": "",
    "default_transport": "smtp",
    "relayhost": "",
    "sender_dependent_relayhost_maps": "",
    "sender_dependent_default_transport_maps": "",
    "smtp_fallback_relay": "",
    "relay_domains": "",  # below compatibility_level 2: $mydestination (see CaseInputs._default)
    "relay_transport": "relay",
    "content_filter": "",
    "inet_protocols": "all",
    "config_directory": "/etc/postfix",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "virtual_alias_domains": "$virtual_alias_maps",
    "virtual_alias_maps": "$virtual_maps",
    "virtual_mailbox_domains": "$virtual_mailbox_maps",
    "compatibility_level": "0",
    "parent_domain_matches_subdomains": "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,"
    "qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
}


@dataclass(frozen=True)
class Setting:
    """A parameter's value and where it came from, in words (``main.cf, set by the case``)."""

    name: str
    value: str
    origin: str

    def describe(self) -> str:
        """``smtp_tls_security_level = may (main.cf, set by the scenario)``."""
        return f"{self.name} = {self.value or '(empty)'} ({self.origin})"


@dataclass(frozen=True)
class CaseInputs:
    """Everything the model reads of one case.

    Attributes:
        scenario, case: names.
        release: the Postfix release the case runs on (``postfix.release``; the project's default is 3.7), as the
            full version of the Debian package that ships it (``3.7.11``) when it is known.
        main_cf: every parameter the case's main.cf sets, with its origin.
        master_cf: the scenario's and the case's master.cf entries (the image's own entries set no TLS option).
        maps: map path → content; a ``{{ fingerprint NAME }}`` is kept as one symbolic word
            (:func:`harness._explain_trust.symbolic`), since the digest exists only at run time.
        trust: the CA names installed in ``smtp_tls_CAfile``/``smtp_tls_CApath``; ``trust_origin`` says why.
        cas, certs, dns, servers: the case's world (its overrides merged over the scenario's); ``dns`` keyed by
            owner name (lower case, no trailing dot), ``servers`` by host (same, or a canonical address).
        now: when certificate validity is judged (default: now).
        unsupported: a ``postfix`` key of the scenario the model does not read (its configuration may then differ
            from what the model sees), or a configuration folder that cannot be read, if any.
        folder: the configuration folder as the scenario names it (``etc-postfix``), None without one.
        hostname: the pod's host name (``myhostname`` unless main.cf sets it).
    """

    scenario: str
    case: str
    release: str
    main_cf: Mapping[str, Setting]
    master_cf: str
    maps: Mapping[str, str]
    trust: tuple[str, ...]
    trust_origin: str
    cas: Mapping[str, CaSpec]
    certs: Mapping[str, CertSpec]
    dns: Mapping[str, DnsNode]
    servers: Mapping[str, ServerSpec]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    unsupported: str | None = None
    folder: str | None = None
    hostname: str = DEFAULT_HOSTNAME

    def param(self, name: str, service: SmtpService | None = None) -> Setting:
        """The value of parameter ``name`` for the Postfix SMTP client running as ``service``: the service's
        ``-o name=value`` in master.cf, else main.cf, else Postfix's default; ``$other`` expanded."""
        raw = self._raw(name, service)
        return replace(raw, value=self._expand(raw.value, service, depth=0))

    @property
    def version(self) -> tuple[int, ...]:
        """:attr:`release` as numbers, ``(3, 7, 11)``."""
        return tuple(int(p) for p in self.release.split(".") if p.isdigit())

    @property
    def compatibility_level(self) -> tuple[int, ...]:
        """``compatibility_level`` as numbers (``(3, 6)``; ``(0,)`` when unset)."""
        value = self.param("compatibility_level").value
        return tuple(int(p) for p in re.findall(r"\d+", value)) or (0,)

    def service(self, transport: str) -> SmtpService | None:
        """The master.cf service called ``transport`` (type ``unix``) that runs ``smtp``, from the scenario's and
        case's entries (the later one wins), or the configuration folder's; None for the image's own entries and
        for any other service."""
        found = None
        for svc in smtp_services(self.master_cf):
            if svc.name == transport and svc.type == "unix":
                found = svc
        return found

    def receiver(self, via: str) -> SmtpService | None:
        """The master.cf service that receives a message sent ``via`` ``sendmail`` (``pickup``) or ``smtp`` (the
        ``smtpd`` listening on 127.0.0.1 port 25, where the harness connects), for its ``-o`` overrides; None when
        master.cf as the model sees it has no such entry (the image's own entries have no ``-o``)."""
        if via == "smtp":
            names = {"smtp", "25", "127.0.0.1:smtp", "127.0.0.1:25", "localhost:smtp", "localhost:25"}
            wanted = [("smtpd", "inet", name) for name in names]
        else:
            wanted = [("pickup", kind, "pickup") for kind in ("unix", "fifo")]
        found = None
        for entry in master_entries(self.master_cf):
            fields = " ".join(entry).split()
            if len(fields) >= 8 and (fields[7], fields[1], fields[0]) in wanted:
                found = SmtpService(fields[0], fields[1], fields[7], tuple(fields[8:]))
        return found

    def with_service_option(self, service: SmtpService, name: str, value: str) -> CaseInputs:
        """A copy whose master.cf entry of ``service`` has ``-o name=value`` added (for "what if" changes)."""
        out: list[str] = []
        for entry in master_entries(self.master_cf):
            out.extend(entry)
            fields = entry[0].split()
            if fields[:2] == [service.name, service.type]:
                out.append(f"  -o {name}={value}")
        return replace(self, master_cf="\n".join(out) + "\n")

    def with_param(self, name: str, value: str, origin: str) -> CaseInputs:
        """A copy with main.cf parameter ``name`` set (for "what if" changes)."""
        return replace(self, main_cf={**self.main_cf, name: Setting(name, value, origin)})

    def with_map(self, path: str, content: str) -> CaseInputs:
        """A copy with map file ``path`` holding ``content``."""
        return replace(self, maps={**self.maps, path: content})

    def _raw(self, name: str, service: SmtpService | None) -> Setting:
        if service is not None:
            given = [value for option, value in _service_options(service) if option == name]
            if given:  # master(8) applies the -o options in order: the last one wins
                said = f"master.cf: service {service.name} has -o {name}={given[-1]}"
                return Setting(name, given[-1], said)
        if name in self.main_cf:
            return self.main_cf[name]
        return self._default(name)

    def _default(self, name: str) -> Setting:
        """Postfix's built-in default (``postconf -d``), with those that follow ``compatibility_level``."""
        origin = f"Postfix {self.release} default"
        if name == "myhostname":
            return Setting(name, self.hostname, "the pod's host name")
        if name == "mydomain":
            host = self.param("myhostname").value
            return Setting(name, host.split(".", 1)[1] if "." in host else "localdomain", f"{origin}: from myhostname")
        if name in ("smtp_tls_protocols", "smtp_tls_mandatory_protocols") and self.version < (3, 6):
            return Setting(name, "!SSLv2, !SSLv3", origin)  # the >= form is new in 3.6 (postconf -d on 3.5.25)
        if name not in ("smtp_tls_fingerprint_digest", "relay_domains"):
            return Setting(name, POSTFIX_DEFAULTS.get(name, ""), origin)
        level = self.compatibility_level
        at = f"{origin} at compatibility_level {'.'.join(map(str, level))}"
        if name == "relay_domains":
            return Setting(name, "$mydestination" if level < (2,) else "", at)
        if self.version < (3, 6):
            return Setting(name, "md5", origin)  # Postfix 3.5 knows no other default
        return Setting(name, "md5" if level < (3, 6) else "sha256", at)

    def _expand(self, value: str, service: SmtpService | None, *, depth: int) -> str:
        if depth > 10 or "$" not in value:
            return value

        def one(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2) or m.group(3)
            return self._expand(self._raw(name, service).value, service, depth=depth + 1)

        return _PARAM_REF.sub(one, value)


#: The Postfix version of each Debian suite's package (postfix-tls-notes.md, as seen on 2026-11-30).
_PACKAGED = {"bullseye": "3.5.25", "bookworm": "3.7.11", "trixie": "3.10.13"}

#: The ``postfix`` keys the model reads; any other key set in a scenario makes its predictions uncertain.
_READ = ("release", "config_dir", "hostname", "trust", "main_cf", "master_cf", "maps")

_PARAM_REF = re.compile(r"\$(?:\{(\w+)\}|\((\w+)\)|(\w+))")


def _service_options(service: SmtpService) -> list[tuple[str, str]]:
    """The ``-o name=value`` (and ``-o { name = value }``, Postfix 3.0+) pairs of a master.cf service, in order."""
    text = " ".join(service.args)
    pattern = r"-o\s*\{\s*(?P<bname>\w+)\s*=(?P<bvalue>[^}]*)\}|-o\s+(?P<name>\w+)=(?P<value>\S*)"
    return [
        (m["bname"], m["bvalue"].strip()) if m["bname"] else (m["name"], m["value"]) for m in re.finditer(pattern, text)
    ]


def _full_release(release: str | None) -> str:
    """``3.7`` or ``bookworm`` → ``3.7.11`` (the Debian package's version); an unknown value stays as written."""
    value = release or DEFAULT_RELEASE
    suite = suite_for_release(value)
    return _PACKAGED.get(suite or "", value)


def case_inputs(
    scenario: Scenario, case: Case, *, now: datetime | None = None, release: str | None = None
) -> CaseInputs:
    """The model's view of ``case`` of ``scenario``: its merged configuration and world.

    Args:
        now: when certificate validity is judged (default: now, as the harness issues certificates at run time).
        release: the Postfix version to model instead of the scenario's ``postfix.release`` (``3.5.25``).
    """
    world = merged_world(scenario, case)
    folder = case.postfix.config_dir or scenario.postfix.config_dir
    unknown = [
        f"postfix.{name}"
        for spec in (scenario.postfix, case.postfix)
        for name in type(spec).model_fields
        if name not in _READ and getattr(spec, name) not in (None, "", [], {})
    ]
    problem = f"{', '.join(dict.fromkeys(unknown))} (not read by the model)" if unknown else None
    try:
        config = config_for(scenario, case)
    except ConfigFolderError as exc:  # the loader reports it; the model only says it cannot tell
        config, problem = None, f"postfix.config_dir {folder}: {exc}"
    # What runner.Runner.run_case does, without issuing anything: the folder's content filter stays when a
    # scenario server listens at its next hop.
    settings = settings_for(scenario.postfix, case.postfix, config=config, served=_served(world))
    full = release or _full_release(settings.release)
    version = tuple(int(p) for p in full.split(".") if p.isdigit())
    if settings.harness_defaults:
        main_cf, master_cf = _harness_main_cf(scenario, case, version), "\n".join(settings.master_cf)
    else:
        main_cf = _folder_main_cf(scenario, case, settings, config.main_cf if config else {}, folder or "")
        master_cf = merge_master_cf(settings.user_master_cf, *settings.master_cf) if settings.user_master_cf else ""
        master_cf = master_cf or "\n".join(settings.master_cf)
    roots = tuple(name for name, ca in world.pki.cas.items() if ca.issuer is None)
    if case.postfix.trust is not None:
        trust, trust_origin = tuple(case.postfix.trust), f"postfix.trust of case {case.name}"
    elif scenario.postfix.trust is not None:
        trust, trust_origin = tuple(scenario.postfix.trust), "postfix.trust of the scenario"
    else:
        trust, trust_origin = roots, "every root CA of the scenario (postfix.trust not given)"
    trust_store = [k for k in ("smtp_tls_CAfile", "smtp_tls_CApath") if main_cf.get(k, Setting(k, "", "")).value]
    if trust and settings.harness_defaults and not any(k in main_cf for k in ("smtp_tls_CAfile", "smtp_tls_CApath")):
        main_cf["smtp_tls_CAfile"] = Setting(
            "smtp_tls_CAfile", TRUST_FILE, "main.cf, set by the harness for postfix.trust"
        )
    elif not settings.harness_defaults and not trust_store:
        # The harness installs the scenario's CAs where the configuration looks; a folder that names neither
        # file trusts no CA, as on the real server (postfix_neutralise says so in the case's changes).
        trust, trust_origin = (), "none: the configuration sets neither smtp_tls_CAfile nor smtp_tls_CApath"
    elif trust_store and not settings.harness_defaults:
        trust_origin += f", installed in {' and '.join(f'{k} = {main_cf[k].value}' for k in trust_store)}"
    return CaseInputs(
        unsupported=problem,
        scenario=scenario.name,
        case=case.name,
        release=full,
        main_cf=main_cf,
        master_cf=master_cf,
        maps={path: symbolic(text) for path, text in settings.maps.items()},
        trust=trust,
        trust_origin=trust_origin,
        cas=dict(world.pki.cas),
        certs=dict(world.pki.certs),
        dns={owner_key(k): v for k, v in world.dns.items()},
        servers={host_key(k): v for k, v in world.servers.items()},
        now=now or datetime.now(UTC),
        folder=folder,
        hostname=settings.hostname,
    )


def _harness_main_cf(scenario: Scenario, case: Case, version: tuple[int, ...]) -> dict[str, Setting]:
    """main.cf as :func:`harness.postfix.render_main_cf` writes it without a configuration folder."""
    by_harness = "main.cf, set by the harness"
    main_cf = {name: Setting(name, value, by_harness) for name, value in HARNESS_MAIN_CF.items()}
    level = "3.6" if version >= (3, 6) else "2"
    main_cf["compatibility_level"] = Setting("compatibility_level", level, by_harness)
    for name, value in (scenario.postfix.main_cf or {}).items():
        main_cf[name] = Setting(name, symbolic(value), "main.cf, set by the scenario")
    for name, value in (case.postfix.main_cf or {}).items():
        main_cf[name] = Setting(name, symbolic(value), f"main.cf, set by case {case.name}")
    return main_cf


def _folder_main_cf(
    scenario: Scenario, case: Case, settings: PostfixSettings, own: Mapping[str, str], folder: str
) -> dict[str, Setting]:
    """main.cf as the pod runs a configuration folder: the folder's parameters, those the harness changed for the
    pod, then the scenario's and the case's."""
    main_cf: dict[str, Setting] = {}
    for name, value in settings.main_cf.items():
        if name in (case.postfix.main_cf or {}):
            origin = f"main.cf, set by case {case.name}"
        elif name in (scenario.postfix.main_cf or {}):
            origin = "main.cf, set by the scenario"
        elif name == "myhostname" and (case.postfix.hostname or scenario.postfix.hostname):
            origin = "postfix.hostname of the scenario"
        elif own.get(name) != value:
            origin = f"main.cf of the configuration folder {folder}, changed by the harness for the pod"
        else:
            origin = f"main.cf of the configuration folder {folder}"
        main_cf[name] = Setting(name, symbolic(value), origin)
    return main_cf


def _served(world: Scenario) -> set[tuple[str, int]]:
    """``(address, port)`` of every scenario server, as the runner passes them to
    :func:`harness.postfix.settings_for` (``auto`` addresses as :mod:`harness.world` picks them; nothing issued)."""
    from harness.world import _addresses  # the pure part of build_world: which address each host gets

    addresses = _addresses(world)
    out: set[tuple[str, int]] = set()
    for host, spec in world.servers.items():
        try:
            targets = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            targets = addresses.get(host.lower().rstrip("."), [])
        out |= {(address, port) for address in targets for port in spec.ports}
    return out
