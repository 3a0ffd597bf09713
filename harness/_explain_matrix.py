"""The differential matrix: hundreds of TLS situations, packed into a few cases, to hold the model to real Postfix.

Each :class:`Combination` is one recipient domain with its own MX host, fake server and certificate, and its own
policy table (or transport table) entry, so that many of them share one case (one pod, one Postfix) without
influencing each other: every next-hop is different, so a deferral of one does not suspend another. The dimensions:

* security level: ``none``, ``may``, ``encrypt``, ``fingerprint``, ``verify``, ``secure``; an invalid entry
  (``match=`` at ``may``/``encrypt``);
* where the level comes from: a policy table entry for the next-hop, a parent-domain entry (``.example``), main.cf
  (``smtp_tls_security_level``), a master.cf ``-o`` of the transport that ``transport_maps`` picks;
* match list: the default, ``hostname``, ``nexthop``, ``dot-nexthop``, a ``.domain`` pattern, a literal name in
  other letter case; the global ``smtp_tls_secure_cert_match``;
* certificate names (:data:`LAYOUTS`): exact MX name, wildcard, parent wildcard, CN only, a subjectAltName beside a
  matching CN, MX under another domain, the next-hop's own name, a subdomain of the next-hop;
* trusted or untrusted chain; MX next-hop, bracketed next-hop (``transport_maps``: ``smtp:[host]``), a
  bracketed next-hop with a port, ``relayhost = [host]:587``, and ``transport_maps`` ``smtp:`` (an empty next-hop:
  the recipient domain again, despite ``relayhost``).

:func:`matrix_scenario` builds the scenario (no expectations: the model's predictions are the expectations,
compared by the differential test and ``bench/bench_explain.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.explain import Disagreement, Prediction, disagreements, explain_case
from harness.model import Scenario
from harness.results import CaseResult, Observed
from harness.scenario import scenario_from_dict

__all__ = ["LAYOUTS", "Combination", "Verdict", "combinations", "judge", "matrix_scenario"]

#: Certificate name layouts: name → (what it stands for).
LAYOUTS = {
    "exact": "the certificate names the MX host",
    "wildcard": "a wildcard for the MX host's domain (*.D covers mx.D)",
    "parent-wildcard": "a wildcard one level too high (*.wild.example: covers D, not mx.D)",
    "cn-only": "no subjectAltName; the CN is the MX host",
    "san-other-cn": "a subjectAltName other.D beside a CN that is the MX host (the CN is ignored)",
    "provider": "the MX host is under another domain, whose names the certificate carries",
    "nexthop-name": "the certificate names the next-hop domain and *.D; the MX host is two labels below",
    "subdomain": "the certificate names mail.D, a subdomain of the next-hop that is not the MX host",
}
_MATCHES = ("", "hostname", "nexthop", "dot-nexthop", ".parent", "LITERAL")
_SERVICES = {level: f"smtp-{level}" for level in ("encrypt", "verify", "secure")}
_PORTS = {"bracketed-port": 2525, "relayhost": 587}


@dataclass(frozen=True)
class Combination:
    """One situation of the matrix.

    Attributes:
        id: short name, also the certificate's name (``c042``).
        case: the case it runs in.
        level: the level written (policy entry, main.cf or ``-o``); ``source`` says where.
        match: the ``match=`` written ("" for none).
        layout: a key of :data:`LAYOUTS`.
        trusted: whether the certificate's CA is trusted.
        kind: ``mx``, ``bracketed``, ``bracketed-port``, ``relayhost`` or ``transport-reset``.
        domain, host: the recipient domain and its MX (or bracketed) host.
    """

    id: str
    case: str
    level: str
    source: str
    match: str
    layout: str
    trusted: bool
    kind: str
    domain: str
    host: str

    @property
    def recipient(self) -> str:
        return f"user@{self.domain}"

    def describe(self) -> str:
        """``c042: secure (policy) match=hostname, wildcard, trusted, bracketed``."""
        match = f" match={self.match}" if self.match else ""
        trust = "trusted" if self.trusted else "untrusted"
        return f"{self.id}: {self.level} ({self.source}){match}, {self.layout}, {trust}, {self.kind}"


_Spec = tuple[str, str, str, str, bool, str, str]  # case, level, source, match, trusted, kind, layout


def _specs() -> Iterator[_Spec]:
    """Every combination's dimensions, in a fixed order."""
    layouts = list(LAYOUTS)
    kinds = ("mx", "bracketed")
    for i, layout in enumerate(layouts):
        yield "policy-a", "none", "policy", "", True, kinds[i % 2], layout
    for level in ("may", "encrypt"):
        for layout, trusted, kind in itertools.product(layouts, (True, False), kinds):
            yield "policy-a", level, "policy", "", trusted, kind, layout
    for trusted, kind, pin in itertools.product((True, False), kinds, ("cert", "pubkey", "decoy")):
        yield "policy-a", "fingerprint", "policy", pin, trusted, kind, "exact"
    for level, case in (("verify", "policy-b"), ("secure", "policy-c")):
        for layout, kind, match in itertools.product(layouts, kinds, _MATCHES):
            yield case, level, "policy", match, True, kind, layout
        for layout, kind in itertools.product(layouts, kinds):
            yield case, level, "policy", "", False, kind, layout
        for layout in layouts:
            yield case, level, "policy", "", True, "bracketed-port", layout
    for level, layout, kind in itertools.product(("encrypt", "verify", "secure"), ("exact", "wildcard"), kinds):
        yield "policy-a", level, "parent", "", True, kind, layout
    for level, kind in itertools.product(("may", "encrypt"), kinds):
        yield "policy-a", level, "policy", "nexthop", True, kind, "exact"
    for level, layout, kind in itertools.product(_SERVICES, ("exact", "provider", "nexthop-name", "subdomain"), kinds):
        yield "policy-a", level, "master.cf -o", "", True, kind, layout
    for case, level in (("global-verify", "verify"), ("global-secure", "secure"), ("global-secure-match", "secure")):
        for layout, kind in itertools.product(layouts, kinds):
            yield case, level, "main.cf", "", True, kind, layout
    yield "relayhost", "secure", "policy", "", True, "relayhost", "exact"
    for level, layout in itertools.product(("verify", "secure"), ("exact", "provider")):
        yield "relayhost", level, "policy", "", True, "transport-reset", layout


def combinations() -> list[Combination]:
    """Every combination of the matrix, in a fixed order (ids ``c000`` …)."""
    out = []
    for number, (case, level, source, match, trusted, kind, layout) in enumerate(_specs()):
        ident = f"c{number:03d}"
        domain, host = _names(ident, layout, source, kind)
        out.append(Combination(ident, case, level, source, match, layout, trusted, kind, domain, host))
    return out


def _names(ident: str, layout: str, source: str, kind: str) -> tuple[str, str]:
    """(recipient domain, MX host) of a combination."""
    domain = f"sub.{ident}.example" if source == "parent" else f"{ident}.example"
    if kind == "relayhost":
        return domain, f"relay-{ident}.example"
    if layout == "parent-wildcard":
        domain = f"{ident}.wild.example"
    if layout == "provider":
        return domain, f"mx-{ident}.provider.example"
    if layout == "nexthop-name":
        return domain, f"smtpin.mx.{domain}"
    return domain, f"mx.{domain}"


def _certificate(c: Combination) -> dict[str, Any]:
    issuer = "inter" if c.trusted else "other-inter"
    layouts: dict[str, dict[str, Any]] = {
        "exact": {"san": [c.host]},
        "wildcard": {"san": [f"*.{c.domain}"]},
        "parent-wildcard": {"san": ["*.wild.example"]},
        "cn-only": {"cn": c.host},
        "san-other-cn": {"san": [f"other.{c.domain}"], "cn": c.host},
        "provider": {"san": ["*.provider.example", "provider.example"]},
        "nexthop-name": {"san": [f"*.{c.domain}", c.domain]},
        "subdomain": {"san": [f"mail.{c.domain}"]},
    }
    return {"issuer": issuer, "key": "ec256", **layouts[c.layout]}


def _match_value(c: Combination) -> str:
    if c.level == "fingerprint":
        function = "pubkey_fingerprint" if c.match == "pubkey" else "fingerprint"
        return f"{{{{ {function} {'decoy' if c.match == 'decoy' else c.id} }}}}"
    if c.match == ".parent":
        return "." + c.host.split(".", 1)[1]
    if c.match == "LITERAL":
        return c.host.upper()
    return c.match


def _policy_line(c: Combination) -> str | None:
    if c.source not in ("policy", "parent"):
        return None
    key = {"bracketed": f"[{c.host}]", "bracketed-port": f"[{c.host}]:2525", "relayhost": f"[{c.host}]:587"}.get(
        c.kind, c.domain
    )
    if c.source == "parent":
        key = "." + c.domain.split(".", 1)[1]
    match = _match_value(c)
    return f"{key} {c.level}" + (f" match={match}" if match else "")


def _transport_line(c: Combination) -> str | None:
    if c.kind == "relayhost":
        return None
    transport = _SERVICES[c.level] if c.source == "master.cf -o" else ("smtp" if c.kind != "mx" else "")
    if not transport:
        return None
    nexthop = {"bracketed": f"[{c.host}]", "bracketed-port": f"[{c.host}]:2525"}.get(c.kind, "")
    return f"{c.domain} {transport}:{nexthop}"


def matrix_scenario(combos: list[Combination] | None = None) -> Scenario:
    """The scenario that runs ``combos`` (default: :func:`combinations`), one case per :attr:`Combination.case`."""
    combos = combos if combos is not None else combinations()
    cases = []
    for case in dict.fromkeys(c.case for c in combos):
        mine = [c for c in combos if c.case == case]
        policy = [line for c in mine if (line := _policy_line(c))]
        transport = [line for c in mine if (line := _transport_line(c))]
        main_cf: dict[str, str] = {}
        if case.startswith("global-"):
            main_cf["smtp_tls_security_level"] = mine[0].level
        if case == "global-secure-match":
            main_cf["smtp_tls_secure_cert_match"] = "hostname, nexthop, dot-nexthop"
        for c in mine:
            if c.kind == "relayhost":
                main_cf["relayhost"] = f"[{c.host}]:587"
        cases.append(
            {
                "name": case,
                "postfix": {
                    "main.cf": main_cf,
                    "maps": {
                        "/etc/postfix/tls_policy": "\n".join(policy) + "\n",
                        "/etc/postfix/transport": "\n".join(transport) + "\n",
                    },
                },
                "pki": {"certs": {c.id: _certificate(c) for c in mine}},
                "dns": _dns(mine),
                "servers": {c.host: {"cert": c.id, "ports": [_PORTS.get(c.kind, 25)]} for c in mine},
                "send": [{"to": c.recipient} for c in mine],
            }
        )
    master = "\n".join(
        f"{name} unix - - n - - smtp -o smtp_tls_security_level={level}" for level, name in _SERVICES.items()
    )
    return scenario_from_dict(
        {
            "name": "explain-differential",
            "description": "The TLS model's differential matrix (harness/_explain_matrix.py).",
            "pki": {
                "cas": {
                    "root": {"subject": "/O=Matrix/CN=Matrix Root", "key": "ec256"},
                    "inter": {"issuer": "root", "subject": "/O=Matrix/CN=Matrix Issuing CA", "key": "ec256"},
                    "other-root": {"subject": "/O=Elsewhere/CN=Elsewhere Root", "key": "ec256"},
                    "other-inter": {"issuer": "other-root", "subject": "/O=Elsewhere/CN=Elsewhere CA", "key": "ec256"},
                },
                "certs": {"decoy": {"issuer": "inter", "san": ["decoy.example"], "key": "ec256"}},
            },
            "postfix": {
                "trust": ["root"],
                "master.cf": master,
                "main.cf": {
                    "smtp_tls_security_level": "may",
                    "smtp_tls_policy_maps": "texthash:/etc/postfix/tls_policy",
                    "transport_maps": "texthash:/etc/postfix/transport",
                },
                "maps": {"/etc/postfix/tls_policy": "\n", "/etc/postfix/transport": "\n"},
            },
            "cases": cases,
        },
        source="<explain matrix>",
    )


def _dns(combos: list[Combination]) -> dict[str, Any]:
    dns: dict[str, Any] = {}
    for c in combos:
        dns[c.domain] = {"MX": f"10 {c.host}"}
        dns[c.host] = {"A": "auto"}
    return dns


@dataclass(frozen=True)
class Verdict:
    """The model against Postfix for one combination.

    Attributes:
        combination: the situation.
        prediction: the model's.
        observed: Postfix's first attempt (None when nothing was observed: the case failed to run).
        disagreements: the keys on which they differ (status, DSN, TLS level).
    """

    combination: Combination
    prediction: Prediction
    observed: Observed | None
    disagreements: tuple[Disagreement, ...]

    @property
    def agrees(self) -> bool:
        """Postfix was observed, the model was sure, and they agree on status, DSN and TLS level."""
        return self.observed is not None and self.prediction.certain and not self.disagreements

    def describe(self) -> str:
        """One line: the combination, the model's prediction and what Postfix did."""
        seen = self.observed.summary() if self.observed else "nothing observed"
        return f"{self.combination.describe()}: model {self.prediction.summary()}; Postfix {seen}"


def judge(scenario: Scenario, results: Iterable[CaseResult], combos: list[Combination]) -> list[Verdict]:
    """Hold the model's prediction for every combination against what Postfix did in ``results``."""
    by_recipient = {c.recipient: c for c in combos}
    observed = {(r.case, r.recipient): r.observed for case in results for r in case.recipients}
    verdicts = []
    for case in scenario.cases:
        for explanation in explain_case(scenario, case, fixes=False):
            seen = observed.get((case.name, explanation.recipient))
            found = disagreements(explanation.prediction, seen) if seen is not None else ()
            verdicts.append(Verdict(by_recipient[explanation.recipient], explanation.prediction, seen, found))
    return verdicts
