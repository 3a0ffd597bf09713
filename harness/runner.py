"""Runs scenarios: for every case a fresh pod, Postfix configured, messages injected, first attempts read.

A case's steps (design.md): start the Postfix container (Postfix waits), copy main.cf/master.cf/maps/trust store
in and run the install script, start the peer with the world, wait for the peer's ``ready`` and Postfix's
``daemon started``, inject each message with Postfix's ``sendmail``, then read Postfix's log until every
recipient has a ``status=`` line (its first delivery attempt) or the case's time limit passes. The pod is removed
whatever happened. Every case gets a fresh pod, so no queue, qmgr memory of dead destinations or TLS session cache
carries over from an earlier case.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from harness.config_check import fatal_issues, unused_parameter_issues
from harness.derived import substitute_settings
from harness.engine import Engine, Pod, new_run_id, remove_leftovers
from harness.errors import CaseTimeout, ConfigRejected, PodError, ScenarioIssue
from harness.images import ImageSet, ensure_images
from harness.maillog import Attempt, DeliveryTracker
from harness.message import rfc5322
from harness.model import Case, Message, Scenario
from harness.postfix import (
    START_POSTFIX,
    TRUST_DIR,
    PostfixSettings,
    indexed_maps,
    install_script,
    merge_master_cf,
    preflight_script,
    render_main_cf,
    settings_for,
    smtp_services,
    unused_parameters,
)
from harness.results import CaseResult, Observed, RecipientResult, ServerSession, compare
from harness.world import World, build_case_world, build_world

__all__ = ["DEFAULT_TIMEOUT_S", "Runner"]

#: Seconds a case may take from injection until every recipient has a first-attempt status.
DEFAULT_TIMEOUT_S = 30.0
#: Seconds for the pod to come up (peer ready, Postfix's master started).
STARTUP_TIMEOUT_S = 30.0
#: Seconds to wait, after the last status line, for the fake servers to report their sessions closed.
SESSION_GRACE_S = 3.0


#: Seconds to wait for the ``fatal:`` lines of a service that did not start in the preflight.
FATAL_GRACE_S = 2.0


@dataclass(frozen=True)
class _ImageFacts:
    version: str
    master_cf: str
    parameters: frozenset[str]


class Runner:
    """Runs cases on real Postfix. One Runner per harness run: it owns the engine connection and the run id.

    Args:
        engine: a connected :class:`~harness.engine.Engine` (default: connect on first use).
        timeout_s: per-case limit in seconds for every recipient to reach a first-attempt status.
        progress: called with one-line progress messages (image builds).
        keep_failed: leave the pod of a failed case running (for a look inside); its Postfix container's name is
            in ``CaseResult.kept_pod``. ``mxharness clean`` removes it later.

    Use as a context manager: on exit every container of this run is removed, also after Ctrl-C.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        progress: Callable[[str], None] = print,
        keep_failed: bool = False,
    ) -> None:
        self._engine = engine
        self.keep_failed = keep_failed
        self._kept: set[str] = set()
        self.timeout_s = timeout_s
        self.progress = progress
        self.run_id = new_run_id()
        self._images: dict[str | None, ImageSet] = {}
        self._facts: dict[str, _ImageFacts] = {}

    @property
    def engine(self) -> Engine:
        """The engine connection (connects on first use; raises EnvironmentProblem when none answers)."""
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close()
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.progress(f"interrupted: the pods of run {self.run_id} are removed")

    def close(self) -> int:
        """Remove whatever this run left (normally nothing; after an interrupt, the pod of the case that was
        running) and close the engine connection.

        Returns:
            How many containers were removed.
        """
        removed = 0
        if self._engine is not None:
            removed = remove_leftovers(self._engine, run_id=self.run_id, keep=self._kept)
            self._engine.close()
            self._engine = None
        return removed

    def images(self, release: str | None) -> ImageSet:
        """The pod images for a release, built on first use (raises EnvironmentProblem)."""
        if release not in self._images:
            self._images[release] = ensure_images(self.engine, release, progress=self.progress)
        return self._images[release]

    def run(
        self, scenarios: Iterable[Scenario], *, select: Callable[[Scenario, Case], bool] | None = None
    ) -> Iterator[CaseResult]:
        """Run every case of every scenario (or those ``select`` keeps), yielding each result when it is done."""
        for scenario in scenarios:
            cases = [c for c in scenario.cases if select is None or select(scenario, c)]
            if not cases:
                continue
            world = build_world(scenario)
            for case in cases:
                yield self.run_case(scenario, case, world=world)

    def run_case(self, scenario: Scenario, case: Case, *, world: World | None = None) -> CaseResult:
        """Run one case in a fresh pod.

        Args:
            world: the scenario's world (:func:`~harness.world.build_world`), shared by its cases. A case that
                overrides ``servers``, ``dns`` or ``pki.certs`` gets its own, built from it.

        Returns:
            The case's result. Problems inside the pod (a timeout, a command that failed, a configuration
            Postfix rejects) are reported in ``CaseResult.error`` / ``config_issues`` with the log tails, not
            raised.

        Raises:
            EnvironmentProblem: no engine, or the images cannot be built.
        """
        started = time.monotonic()
        world = build_case_world(scenario, case, shared=world)
        # Derived values ({{ fingerprint mx }}) exist only now that the case's certificates do.
        settings = substitute_settings(settings_for(scenario.postfix, case.postfix), world.pki)
        images = self.images(settings.release)
        labels = {"mxharness.scenario": scenario.name, "mxharness.case": case.name}
        tracker = DeliveryTracker()
        ids = [f"mxh.{self.run_id}.{i}@{scenario.name}.{case.name}.mxharness.test" for i in range(len(case.send))]
        config_issues: list[ScenarioIssue] = []
        main_cf = ""
        with Pod(
            self.engine,
            postfix_image=images.postfix,
            peer_image=images.peer,
            run_id=self.run_id,
            hostname=settings.hostname.split(".")[0],
            labels=labels,
        ) as pod:
            error = None
            try:
                main_cf = self._bring_up(pod, images, settings, world, scenario, scenario.cases.index(case))
                self._inject(pod, case.send, ids)
                self._wait_for_first_attempts(pod, tracker, case.send, ids)
            except ConfigRejected as exc:
                error, config_issues = str(exc), exc.issues
            except PodError as exc:
                error = str(exc)
            postfix_log = tuple(pod.postfix_log.snapshot() if pod.postfix_log else ())
            peer_log = tuple(pod.peer_log.snapshot() if pod.peer_log else ())
            for line in postfix_log[tracker.fed :]:
                tracker.feed(line)
            result = CaseResult(
                scenario=scenario.name,
                case=case.name,
                source_file=scenario.source_file,
                recipients=_recipients(scenario, case, ids, tracker, _sessions(peer_log), error),
                release=tracker.version,
                error=error,
                config_issues=tuple(config_issues),
                server_chains=world.server_chains(),
                server_names=world.server_names(),
                main_cf=main_cf,
                maps=dict(settings.maps),
                postfix_log=postfix_log,
                peer_events=peer_log,
            )
            if not result.passed and self.keep_failed and pod.postfix is not None:
                result = replace(result, kept_pod=pod.postfix.name)
                self._kept.update(str(c.id) for c in (pod.postfix, pod.peer) if c is not None)
                pod.detach()
        return replace(result, duration_s=time.monotonic() - started)

    # --- the steps of a case ------------------------------------------------------------------------------

    def _bring_up(
        self, pod: Pod, images: ImageSet, settings: PostfixSettings, world: World, scenario: Scenario, index: int
    ) -> str:
        """Start the pod with the case's configuration; returns the main.cf written."""
        pod.start_postfix()
        facts = self._image_facts(pod, images.postfix)
        version = tuple(int(p) for p in facts.version.split(".")[:3] if p.isdigit())
        master_cf = merge_master_cf(facts.master_cf, *settings.master_cf)
        trust = world.trust_pems(settings.trust)
        if not trust:
            # A CAfile/CApath the scenario names still gets a valid file: a CA of no one in the world.
            trust = {"placeholder": world.placeholder_ca_pem()}
        files = {
            "/etc/postfix/main.cf": render_main_cf(
                settings, version=version, trusts_any=bool(world.trust_pems(settings.trust))
            ).encode(),
            "/etc/postfix/master.cf": master_cf.encode(),
            **{path: content.encode() for path, content in settings.maps.items()},
            **{f"{TRUST_DIR}/{name}.pem": pem for name, pem in trust.items()},
        }
        pod.put_postfix_files(files)
        _, output = pod.exec_postfix(install_script(indexed_maps(settings, master_cf)))
        if unused := unused_parameters(output):
            raise ConfigRejected(unused_parameter_issues(scenario, index, unused, facts.parameters))
        pod.exec_postfix(START_POSTFIX)
        pod.start_peer(world.peer_files())
        assert pod.peer_log is not None and pod.postfix_log is not None
        if not pod.peer_log.wait_for(lambda ls: any('"ready"' in x or '"error"' in x for x in ls), STARTUP_TIMEOUT_S):
            raise PodError(
                f"the peer did not report ready within {STARTUP_TIMEOUT_S:.0f} s ({pod.state()})",
                pod.peer_log.snapshot()[-20:],
            )
        errors = [x for x in pod.peer_log.snapshot() if '"event": "error"' in x or '"event":"error"' in x]
        if errors:
            raise PodError(f"the peer could not start the world: {errors[0]}", pod.peer_log.snapshot()[-20:])
        if not pod.postfix_log.wait_for(lambda ls: any("daemon started" in x for x in ls), STARTUP_TIMEOUT_S):
            raise PodError(
                f"Postfix did not start within {STARTUP_TIMEOUT_S:.0f} s ({pod.state()}). Hint: a fatal line above "
                "usually names the parameter",
                pod.postfix_log.snapshot()[-20:],
            )
        self._preflight(pod, master_cf, settings, scenario, index)
        return files["/etc/postfix/main.cf"].decode()

    def _preflight(self, pod: Pod, master_cf: str, settings: PostfixSettings, scenario: Scenario, index: int) -> None:
        """Start each SMTP client service once so that Postfix checks its parameter values before mail is sent."""
        assert pod.postfix_log is not None
        _, output = pod.exec_postfix(preflight_script(smtp_services(master_cf)))
        if "failed" not in output:
            return
        pod.postfix_log.wait_for(lambda ls: any("fatal:" in x for x in ls), FATAL_GRACE_S)
        fatal = sorted({x.split(": ", 1)[-1] for x in pod.postfix_log.snapshot() if "fatal:" in x})
        if not fatal:
            fatal = [f"fatal: {line}" for line in output.splitlines()]
        raise ConfigRejected(fatal_issues(scenario, index, fatal, settings.main_cf), pod.postfix_log.snapshot()[-20:])

    def _image_facts(self, pod: Pod, image: str) -> _ImageFacts:
        if image not in self._facts:
            script = "postconf -dh mail_version; echo ---; postconf -dH; echo ---; cat /etc/postfix/master.cf.image"
            _, out = pod.exec_postfix(script)
            version, names, master_cf = out.split("---\n", 2)
            self._facts[image] = _ImageFacts(version.strip(), master_cf, frozenset(names.split()))
        return self._facts[image]

    def _inject(self, pod: Pod, messages: list[Message], ids: list[str]) -> None:
        files = {
            f"/run/mxharness/mail/{i}.eml": rfc5322(m, mid)
            for i, (m, mid) in enumerate(zip(messages, ids, strict=True))
        }
        pod.put_postfix_files(files)
        # -N never: no DSN notification to the sender (it would be a second queue entry for example.test).
        commands = [
            f"sendmail -N never -f {shlex.quote(m.from_)} -- {shlex.quote(m.to)} < /run/mxharness/mail/{i}.eml"
            for i, m in enumerate(messages)
        ]
        pod.exec_postfix("set -e\n" + "\n".join(commands))

    def _wait_for_first_attempts(
        self, pod: Pod, tracker: DeliveryTracker, messages: list[Message], ids: list[str]
    ) -> None:
        assert pod.postfix_log is not None and pod.peer_log is not None

        def all_decided_or_fatal(lines: list[str]) -> bool:
            for line in lines[tracker.fed :]:
                tracker.feed(line)
            decided = all(tracker.first_attempt(mid, m.to) for m, mid in zip(messages, ids, strict=True))
            return decided or bool(tracker.fatals)

        finished = pod.postfix_log.wait_for(all_decided_or_fatal, self.timeout_s)
        if fatal := tracker.fatals:
            # A daemon that dies at start is restarted by master(8) after a pause, again and again: no status
            # line would ever come, so the case ends at the first fatal line.
            raise PodError(
                f"Postfix stopped with a fatal error: {fatal[0].service}: {fatal[0].message}. "
                "Hint: the line names the parameter or file at fault",
                pod.postfix_log.snapshot()[-25:],
            )
        if not finished:
            missing = [m.to for m, mid in zip(messages, ids, strict=True) if not tracker.first_attempt(mid, m.to)]
            tail = [*pod.postfix_log.snapshot()[-25:], "--- peer events ---", *pod.peer_log.snapshot()[-15:]]
            raise CaseTimeout(
                f"no first-attempt status for {', '.join(missing)} within {self.timeout_s:.0f} s ({pod.state()}). "
                "Hint: see the last log lines; raise the limit with --timeout if the world is slow on purpose",
                tail,
            )
        # The fake servers report a session when it closes, just after Postfix's status line.
        pod.peer_log.wait_for(_sessions_closed, SESSION_GRACE_S)


def _recipients(
    scenario: Scenario,
    case: Case,
    ids: list[str],
    tracker: DeliveryTracker,
    sessions: list[dict[str, object]],
    error: str | None,
) -> tuple[RecipientResult, ...]:
    """Each message's first attempt as observed, held against its ``expect``."""
    results = []
    for message, message_id in zip(case.send, ids, strict=True):
        attempt = tracker.first_attempt(message_id, message.to)
        observed = _observed(attempt, sessions, message_id, tracker) if attempt else None
        results.append(
            RecipientResult(
                scenario=scenario.name,
                case=case.name,
                recipient=message.to,
                expect=message.expect,
                observed=observed,
                checks=compare(message.expect, observed) if observed else (),
                release=tracker.version,
                error=None if observed else (error or "no status line for this recipient"),
                message_id=message_id,
            )
        )
    return tuple(results)


def _events(lines: Iterable[str]) -> Iterator[dict[str, object]]:
    for line in lines:
        _, _, text = line.partition(" ")  # Docker's timestamp
        if text.startswith("{"):
            try:
                event = json.loads(text)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


def _sessions_closed(lines: list[str]) -> bool:
    events = list(_events(lines))
    opened = sum(1 for e in events if e.get("event") == "smtp" and e.get("stage") == "connect")
    return opened == sum(1 for e in events if e.get("event") == "session")


def _sessions(peer_log: Iterable[str]) -> list[dict[str, object]]:
    return [e for e in _events(peer_log) if e.get("event") == "session"]


def _observed(
    attempt: Attempt, sessions: list[dict[str, object]], message_id: str, tracker: DeliveryTracker
) -> Observed:
    d = attempt.delivery
    received = any(
        m.get("message_id") == message_id and m.get("accepted") for s in sessions for m in _list(s.get("messages"))
    )
    server = _server_session(sessions, d.relay_address, d.relay_port, message_id)
    return Observed(
        status=d.status,
        dsn=d.dsn,
        reason=d.reason,
        relay=d.relay,
        relay_host=d.relay_host,
        relay_address=d.relay_address,
        relay_port=d.relay_port,
        tls=attempt.tls_level,
        queue_id=d.queue_id,
        tls_protocol=attempt.tls.protocol if attempt.tls else None,
        tls_cipher=attempt.tls.cipher if attempt.tls else None,
        received=received,
        server=server,
        log_lines=tuple(tracker.lines_for(d.queue_id)),
    )


def _server_session(
    sessions: list[dict[str, object]], address: str | None, port: int | None, message_id: str
) -> ServerSession | None:
    """The fake server's session with the relay: the one that took this message, else the last one there."""
    at_relay = [s for s in sessions if s.get("local_address") == address and s.get("local_port") == port]
    if not at_relay:
        return None
    took = [s for s in at_relay if any(m.get("message_id") == message_id for m in _list(s.get("messages")))]
    s = (took or at_relay)[-1]
    tls = s.get("tls") if isinstance(s.get("tls"), dict) else {}
    assert isinstance(tls, dict)
    return ServerSession(
        server=str(s.get("server")),
        address=str(address),
        port=int(port or 0),
        starttls=bool(s.get("starttls")),
        tls_version=tls.get("version"),
        cipher=tls.get("cipher"),
        sni=tls.get("sni"),
        ehlo=str(s["ehlo"]) if isinstance(s.get("ehlo"), str) else None,
        received=bool(took),
    )


def _list(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
