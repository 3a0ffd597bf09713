"""A reset leaves the files a fresh pod has where the trust store goes: the image's /etc/ssl/certs (Debian's
smtp_tls_CApath, with the snakeoil certificate that smtpd_tls_cert_file names) is put back after a case whose
trust store replaced it, and a pod started ahead of its first case keeps it."""

from __future__ import annotations

from harness.runner import Runner
from harness.scenario import scenario_from_dict

SNAKEOIL = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
WORLD = {
    "dns": {"example.net": {"MX": "10 mx.example.net"}, "mx.example.net": {"A": "auto"}},
    "servers": {"mx.example.net": {}},
}


def _snakeoil_present(runner: Runner) -> bool:
    ((casepod,),) = runner._idle.values()  # the one pod of this run, between two cases
    code, _ = casepod.pod.run_postfix(f"test -f {SNAKEOIL}")
    return code == 0


def test_the_image_trust_path_is_there_for_every_case_as_in_a_fresh_pod(mxharness_runner: Runner) -> None:
    scenario = scenario_from_dict(
        {
            "name": "reset-originals",
            **WORLD,
            "cases": [
                {  # the trust store goes to /etc/ssl/certs, where the image has its own certificates
                    "name": "trust-in-etc-ssl-certs",
                    "postfix": {"main.cf": {"smtp_tls_CApath": "/etc/ssl/certs"}},
                    "send": [{"to": "a@example.net", "expect": {"status": "sent"}}],
                },
                {"name": "default", "send": [{"to": "b@example.net", "expect": {"status": "sent"}}]},
            ],
        }
    )
    with Runner(engine=mxharness_runner.engine, progress=lambda m: None) as runner:
        seen = []
        for result in runner.run([scenario]):
            assert result.passed, result.error
            seen.append(_snakeoil_present(runner))
    # After the first case (its trust store in /etc/ssl/certs) the reset of the second puts the image's back; the
    # check after a case sees the state that case left, so: replaced, then there again.
    assert seen == [False, True]


def test_a_pod_started_ahead_keeps_the_images_trust_path(mxharness_runner: Runner) -> None:
    scenario = scenario_from_dict(
        {
            "name": "reset-originals-ahead",
            **WORLD,
            "cases": [
                {
                    "name": "own-cafile",
                    "postfix": {"main.cf": {"smtp_tls_CAfile": "/etc/postfix/cas.pem"}},
                    "send": [{"to": "a@example.net", "expect": {"status": "sent"}}],
                }
            ],
        }
    )
    with Runner(engine=mxharness_runner.engine, progress=lambda m: None) as runner:
        (result,) = list(runner.run([scenario]))
        assert result.passed, result.error
        assert _snakeoil_present(runner)  # the first case's reset of the pod started ahead removed nothing
