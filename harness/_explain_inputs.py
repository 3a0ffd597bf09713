"""What the TLS model reads of a case: its Postfix configuration (with where each value came from) and its world.

Pure data, built from the scenario alone: nothing is issued, resolved or started. Parameters are what the harness
writes into the case's main.cf (:data:`harness.postfix.HARNESS_MAIN_CF`, then the scenario's, then the case's
``main.cf``), and for the rest Postfix 3.7's built-in defaults (``postconf -d``, ``src/global/mail_params.h``) for
the parameters the model uses. ``$name`` and ``${name}`` in values are expanded as Postfix does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from harness._explain_trust import symbolic
from harness.model import Case, CaSpec, CertSpec, DnsNode, Scenario, ServerSpec
from harness.overrides import host_key, merged_world, owner_key
from harness.postfix import HARNESS_MAIN_CF, SmtpService, settings_for, smtp_services
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
    "relay_domains": "",
    "content_filter": "",
    "inet_protocols": "all",
    "config_directory": "/etc/postfix",
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
            from what the model sees), if any.
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

    def param(self, name: str, service: SmtpService | None = None) -> Setting:
        """The value of parameter ``name`` for the Postfix SMTP client running as ``service``: the service's
        ``-o name=value`` in master.cf, else main.cf, else Postfix's default; ``$other`` expanded."""
        raw = self._raw(name, service)
        return replace(raw, value=self._expand(raw.value, service, depth=0))

    @property
    def version(self) -> tuple[int, ...]:
        """:attr:`release` as numbers, ``(3, 7, 11)``."""
        return tuple(int(p) for p in self.release.split(".") if p.isdigit())

    def service(self, transport: str) -> SmtpService | None:
        """The master.cf service called ``transport`` (type ``unix``) that runs ``smtp``, from the scenario's and
        case's entries (the later one wins); None for the image's own entries and for any other service."""
        found = None
        for svc in smtp_services(self.master_cf):
            if svc.name == transport and svc.type == "unix":
                found = svc
        return found

    def with_param(self, name: str, value: str, origin: str) -> CaseInputs:
        """A copy with main.cf parameter ``name`` set (for "what if" changes)."""
        return replace(self, main_cf={**self.main_cf, name: Setting(name, value, origin)})

    def with_map(self, path: str, content: str) -> CaseInputs:
        """A copy with map file ``path`` holding ``content``."""
        return replace(self, maps={**self.maps, path: content})

    def _raw(self, name: str, service: SmtpService | None) -> Setting:
        if service is not None:
            for option, value in _service_options(service):
                if option == name:
                    return Setting(name, value, f"master.cf: service {service.name} has -o {name}={value}")
        if name in self.main_cf:
            return self.main_cf[name]
        default = POSTFIX_DEFAULTS.get(name, "")
        if name == "smtp_tls_fingerprint_digest" and self.version < (3, 6):
            default = "md5"  # compatibility_level 2, which the harness sets below 3.6
        return Setting(name, default, f"Postfix {self.release} default")

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
_READ = ("release", "hostname", "trust", "main_cf", "master_cf", "maps")

_PARAM_REF = re.compile(r"\$(?:\{(\w+)\}|\((\w+)\)|(\w+))")


def _service_options(service: SmtpService) -> list[tuple[str, str]]:
    """The ``-o name=value`` (and ``-o { name = value }``, Postfix 3.0+) pairs of a master.cf service."""
    text = " ".join(service.args)
    pairs = [
        (m["name"], m["value"].strip()) for m in re.finditer(r"-o\s*\{\s*(?P<name>\w+)\s*=(?P<value>[^}]*)\}", text)
    ]
    pairs += [(m["name"], m["value"]) for m in re.finditer(r"-o\s+(?P<name>\w+)=(?P<value>\S*)", text)]
    return pairs


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
    settings = settings_for(scenario.postfix, case.postfix)
    main_cf: dict[str, Setting] = {
        name: Setting(name, value, "main.cf, set by the harness") for name, value in HARNESS_MAIN_CF.items()
    }
    main_cf["compatibility_level"] = Setting("compatibility_level", "3.6", "main.cf, set by the harness")
    for name, value in (scenario.postfix.main_cf or {}).items():
        main_cf[name] = Setting(name, symbolic(value), "main.cf, set by the scenario")
    for name, value in (case.postfix.main_cf or {}).items():
        main_cf[name] = Setting(name, symbolic(value), f"main.cf, set by case {case.name}")
    world = merged_world(scenario, case)
    roots = tuple(name for name, ca in world.pki.cas.items() if ca.issuer is None)
    if case.postfix.trust is not None:
        trust, trust_origin = tuple(case.postfix.trust), f"postfix.trust of case {case.name}"
    elif scenario.postfix.trust is not None:
        trust, trust_origin = tuple(scenario.postfix.trust), "postfix.trust of the scenario"
    else:
        trust, trust_origin = roots, "every root CA of the scenario (postfix.trust not given)"
    if trust and not any(k in main_cf for k in ("smtp_tls_CAfile", "smtp_tls_CApath")):
        main_cf["smtp_tls_CAfile"] = Setting(
            "smtp_tls_CAfile", "/etc/postfix/mxharness-trust.pem", "main.cf, set by the harness for postfix.trust"
        )
    unknown = [
        f"postfix.{name}"
        for spec in (scenario.postfix, case.postfix)
        for name in type(spec).model_fields
        if name not in _READ and getattr(spec, name) not in (None, "", [], {})
    ]
    return CaseInputs(
        unsupported=f"{', '.join(dict.fromkeys(unknown))} (not read by the model)" if unknown else None,
        scenario=scenario.name,
        case=case.name,
        release=release or _full_release(settings.release),
        main_cf=main_cf,
        master_cf="\n".join(settings.master_cf),
        maps={path: symbolic(text) for path, text in settings.maps.items()},
        trust=trust,
        trust_origin=trust_origin,
        cas=dict(world.pki.cas),
        certs=dict(world.pki.certs),
        dns={owner_key(k): v for k, v in world.dns.items()},
        servers={host_key(k): v for k, v in world.servers.items()},
        now=now or datetime.now(UTC),
    )
