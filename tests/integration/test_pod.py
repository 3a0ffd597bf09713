"""The pod on real Postfix: what the harness installs works the way Postfix documents it.

Every "delivers" test has a twin next to it that does not (and the reverse), so a pass means something.
Expected values are what Postfix 3.7.11 (Debian bookworm) did when these tests were written.
"""

from __future__ import annotations

from typing import Any

from harness.engine import RUN_LABEL
from harness.runner import Runner


def world(**postfix: Any) -> dict[str, Any]:
    """mx.example.net with a certificate for its own name, chained to root `lab-root`, plus a plaintext host."""
    return {
        "name": "pod-behaviour",
        "pki": {
            "cas": {
                "lab-root": {"subject": "/O=Lab/CN=Lab Root", "key": "ec256"},
                "other-root": {"subject": "/O=Elsewhere/CN=Other Root", "key": "ec256"},
            },
            "certs": {
                "mx": {"issuer": "lab-root", "san": ["mx.example.net"], "key": "ec256"},
                "mx6": {"issuer": "lab-root", "san": ["mx.v6.example"], "key": "ec256"},
            },
        },
        "dns": {
            "example.net": {"MX": "10 mx.example.net"},
            "mx.example.net": {"A": "auto"},
            "plain.example": {"MX": "10 mx.plain.example"},
            "mx.plain.example": {"A": "auto"},
            "v6.example": {"MX": "10 mx.v6.example"},
            "mx.v6.example": {"AAAA": "auto"},
        },
        "servers": {
            "mx.example.net": {"cert": "mx"},
            "mx.plain.example": {},
            "mx.v6.example": {"cert": "mx6"},
        },
        "postfix": postfix,
        "cases": [],
    }


def case(name: str, to: str, expect: dict[str, Any], **postfix: Any) -> dict[str, Any]:
    return {"name": name, "postfix": postfix, "send": [{"to": to, "expect": expect}]}


def only(results: list[Any]) -> Any:
    assert len(results) == 1 and len(results[0].recipients) == 1
    return results[0].recipients[0]


def test_verify_with_trusted_root_delivers_and_untrusted_root_defers(run_scenario: Any) -> None:
    data = world(**{"main.cf": {"smtp_tls_security_level": "verify"}})
    data["cases"] = [
        case("trusted", "a@example.net", {"status": "sent", "tls": "Verified", "received": True}),
        case(
            "untrusted",
            "a@example.net",
            {"status": "deferred", "dsn": "4.7.5", "tls": "Untrusted", "received": False},
            trust=["other-root"],
        ),
    ]
    trusted, untrusted = run_scenario(data)
    assert trusted.passed, trusted
    assert untrusted.passed, untrusted
    seen = trusted.recipients[0].observed
    assert seen.relay_host == "mx.example.net" and seen.relay_port == 25
    assert seen.relay_address.startswith("192.0.2.")
    assert seen.server is not None and seen.server.starttls and seen.server.received
    assert seen.server.tls_version and seen.server.tls_version.startswith("TLSv1.")
    assert any("Verified TLS connection established" in line for line in seen.log_lines)
    assert untrusted.recipients[0].observed.reason == "Server certificate not verified"


def test_trust_installed_in_a_capath_with_hash_links(run_scenario: Any) -> None:
    # The seed reporter's configuration names a CA directory, as smtp_tls_CApath; trust goes there.
    data = world(**{"main.cf": {"smtp_tls_security_level": "secure", "smtp_tls_CApath": "/etc/postfix/rootcas/"}})
    data["cases"] = [
        case("capath-trusted", "a@example.net", {"status": "sent", "tls": "Verified"}),
        case(
            "capath-other-root",
            "a@example.net",
            {"status": "deferred", "tls": "Untrusted"},
            trust=["other-root"],
        ),
    ]
    results = run_scenario(data)
    assert [r.passed for r in results] == [True, True], results


def test_plaintext_server_at_may_sends_without_tls_and_encrypt_defers(run_scenario: Any) -> None:
    data = world()
    data["cases"] = [
        case(
            "may-plaintext",
            "a@plain.example",
            {"status": "sent", "tls": "none", "received": True},
            **{"main.cf": {"smtp_tls_security_level": "may"}},
        ),
        case(
            "encrypt-not-offered",
            "a@plain.example",
            {
                "status": "deferred",
                "dsn": "4.7.4",
                "reason": "TLS is required, but was not offered by host",
                "received": False,
            },
            **{"main.cf": {"smtp_tls_security_level": "encrypt"}},
        ),
    ]
    results = run_scenario(data)
    assert [r.passed for r in results] == [True, True], results
    assert results[0].recipients[0].observed.server.starttls is False


def test_master_cf_transport_and_texthash_map(run_scenario: Any) -> None:
    # A transport of its own in master.cf (-o smtp_tls_security_level=encrypt), chosen by a transport map.
    master = "tlsout unix - - n - - smtp\n  -o smtp_tls_security_level=encrypt\n"
    data = world(
        **{
            "master.cf": master,
            "main.cf": {"transport_maps": "texthash:/etc/postfix/transport"},
            "maps": {"/etc/postfix/transport": "plain.example tlsout:\n"},
        }
    )
    data["cases"] = [
        case("transport-encrypt-defers", "a@plain.example", {"status": "deferred", "dsn": "4.7.4"}),
        case(
            "default-transport-sends",
            "a@plain.example",
            {"status": "sent", "tls": "none"},
            maps={"/etc/postfix/transport": "# nothing routed\n"},
        ),
    ]
    results = run_scenario(data)
    assert [r.passed for r in results] == [True, True], results


def test_indexed_policy_maps_are_built_with_postmap(run_scenario: Any) -> None:
    for kind in ("hash", "lmdb", "cdb", "btree"):
        data = world(**{"main.cf": {"smtp_tls_policy_maps": f"{kind}:/etc/postfix/tls_policy"}})
        data["name"] = f"map-{kind}"
        data["cases"] = [
            case(
                "policy-secure-untrusted",
                "a@example.net",
                {"status": "deferred", "dsn": "4.7.5"},
                trust=["other-root"],
                maps={"/etc/postfix/tls_policy": "example.net secure\n"},
            ),
            case(
                "policy-none",
                "a@example.net",
                {"status": "sent", "tls": "none"},
                maps={"/etc/postfix/tls_policy": "example.net none\n"},
            ),
        ]
        results = run_scenario(data)
        assert [r.passed for r in results] == [True, True], (kind, results)


def test_ipv6_only_mx_host_is_reached_on_the_pod_loopback(run_scenario: Any) -> None:
    data = world(**{"main.cf": {"smtp_tls_security_level": "verify"}})
    data["cases"] = [
        case("v6-verified", "a@v6.example", {"status": "sent", "tls": "Verified"}),
        # Observed on 3.7.11: "no MX host for v6.example has a valid address record", then a bounce.
        case(
            "v6-ipv4-only-postfix",
            "a@v6.example",
            {"status": "bounced", "dsn": "5.4.4", "reason": "type=A: Host found but no data record"},
            **{"main.cf": {"inet_protocols": "ipv4"}},
        ),
    ]
    v6, v4only = run_scenario(data)
    assert v6.passed, v6
    assert v6.recipients[0].observed.relay_address.startswith("2001:db8::")
    assert v4only.passed, v4only


def test_unknown_domain_is_nxdomain_and_nothing_leaves_the_pod(run_scenario: Any) -> None:
    # Hermetic: a real-world domain absent from the scenario gets NXDOMAIN from the fake DNS.
    data = world()
    data["cases"] = [
        case(
            "real-world-domain",
            "someone@gmail.com",
            {"status": "bounced", "dsn": "5.4.4", "relay": "none", "reason": "Host or domain name not found"},
        ),
        case("known-domain", "someone@plain.example", {"status": "sent", "relay": "mx.plain.example"}),
    ]
    results = run_scenario(data)
    assert [r.passed for r in results] == [True, True], results


def test_a_wrong_expectation_fails_with_expected_and_observed(run_scenario: Any) -> None:
    # The harness is no rubber stamp: a case expecting the opposite of what Postfix does fails, key by key.
    data = world(**{"main.cf": {"smtp_tls_security_level": "verify"}})
    data["cases"] = [case("expects-the-opposite", "a@example.net", {"status": "deferred", "tls": "Untrusted"})]
    (result,) = run_scenario(data)
    assert not result.passed
    checks = {c.key: c for c in result.recipients[0].checks}
    assert (checks["status"].ok, checks["status"].observed) == (False, "sent")
    assert (checks["tls"].ok, checks["tls"].observed) == (False, "Verified")


def test_a_message_that_never_gets_a_status_times_out_with_the_log_tail(mxharness_runner: Runner) -> None:
    from harness.scenario import scenario_from_dict

    data = world(
        **{
            "main.cf": {"header_checks": "regexp:/etc/postfix/header_checks"},
            "maps": {"/etc/postfix/header_checks": "/^Subject:/ HOLD\n"},
        }
    )
    data["cases"] = [case("held", "a@example.net", {"status": "sent"})]
    quick = Runner(engine=mxharness_runner.engine, timeout_s=3)
    (result,) = list(quick.run([scenario_from_dict(data)]))
    assert not result.passed
    assert result.error and "no first-attempt status for a@example.net within 3 s" in result.error
    assert any("hold" in line.lower() for line in result.postfix_log)
    engine = mxharness_runner.engine
    assert engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={quick.run_id}"}) == []


def test_postfix_release_is_recorded_with_every_result(run_scenario: Any) -> None:
    data = world()
    data["cases"] = [case("release", "a@plain.example", {"status": "sent"})]
    (result,) = run_scenario(data)
    assert result.release and result.release.startswith("3.")
    assert result.recipients[0].release == result.release


def test_no_container_is_left_after_a_run(mxharness_runner: Runner) -> None:
    from harness.scenario import scenario_from_dict

    data = world()
    data["cases"] = [
        case("one", "a@plain.example", {"status": "sent"}),
        case("two", "a@plain.example", {"status": "sent"}),
    ]
    with Runner(engine=mxharness_runner.engine, progress=lambda m: None) as runner:
        results = list(runner.run([scenario_from_dict(data)]))
        run_id = runner.run_id
        label = {"label": f"{RUN_LABEL}={run_id}"}
        assert len(mxharness_runner.engine.client.containers.list(all=True, filters=label)) == 2  # one pod, reused
    assert all(r.passed for r in results)
    assert mxharness_runner.engine.client.containers.list(all=True, filters=label) == []
