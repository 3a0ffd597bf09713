"""A small world for the TLS model's tests: one MX host whose certificate and configuration a test varies."""

from __future__ import annotations

import copy
from typing import Any

from harness._explain_inputs import case_inputs
from harness.explain import Decision, decide
from harness.scenario import scenario_from_dict

BASE: dict[str, Any] = {
    "name": "model-test",
    "pki": {
        "cas": {
            "root": {"subject": "/O=Example/CN=Example Root", "key": "ec256"},
            "inter": {"issuer": "root", "subject": "/O=Example/CN=Example Issuing CA", "key": "ec256"},
            "other-root": {"subject": "/O=Other/CN=Other Root", "key": "ec256"},
        },
        "certs": {"mx": {"issuer": "inter", "san": ["mx.example.com"], "key": "ec256"}},
    },
    "dns": {"example.com": {"MX": "10 mx.example.com"}, "mx.example.com": {"A": "auto"}},
    "servers": {"mx.example.com": {"cert": "mx"}},
    "postfix": {"trust": ["root"], "main.cf": {}, "maps": {}},
}


def world(
    *,
    main_cf: dict[str, str] | None = None,
    policy: str | None = None,
    transport: str | None = None,
    master_cf: str | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The base world with ``main.cf`` parameters, a policy table and a transport table (texthash), a master.cf,
    and top-level sections replaced (``pki``, ``dns``, ``servers``, ``postfix`` keys via ``trust=``)."""
    data = copy.deepcopy(BASE)
    trust = sections.pop("trust", None)
    data.update(sections)
    postfix = data["postfix"]
    postfix["main.cf"].update(main_cf or {})
    if trust is not None:
        postfix["trust"] = trust
    if policy is not None:
        postfix["main.cf"]["smtp_tls_policy_maps"] = "texthash:/etc/postfix/tls_policy"
        postfix["maps"]["/etc/postfix/tls_policy"] = policy
    if transport is not None:
        postfix["main.cf"]["transport_maps"] = "texthash:/etc/postfix/transport"
        postfix["maps"]["/etc/postfix/transport"] = transport
    if master_cf is not None:
        postfix["master.cf"] = master_cf
    return data


def decision(data: dict[str, Any], recipient: str = "user@example.com", *, via: str = "sendmail") -> Decision:
    """The model's decision for ``recipient`` (a message sent ``via``) in a one-case scenario made of ``data``."""
    data = {**data, "cases": [{"name": "c", "send": [{"to": recipient, "via": via}]}]}
    scenario = scenario_from_dict(data, source="<test>")
    return decide(case_inputs(scenario, scenario.cases[0]), recipient, via=via)
