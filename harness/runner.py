"""Runs scenarios on real Postfix: pods, cases, results.

Each case runs in a pod (:mod:`harness.casepod`). By default a pod serves case after case and is reset in
between, which is equivalent to a fresh pod (stopped Postfix, emptied queue and caches, restored configuration,
swapped world; the equivalence test runs the whole library both ways). ``reuse_pods=False`` gives every case a
pod of its own. A pod whose case failed inside the pod (a timeout, a dead container) is removed, never reused.
With ``jobs > 1`` cases run in parallel, each worker on its own pods: nothing is shared between them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import replace

from harness.casepod import CasePod, ImageFacts
from harness.derived import substitute_settings
from harness.engine import Engine, Pod, new_run_id, remove_leftovers
from harness.errors import ConfigRejected, PodError, ScenarioIssue
from harness.images import ImageSet, ensure_images
from harness.maillog import DeliveryTracker
from harness.message import rfc5322
from harness.model import Case, Scenario
from harness.observe import recipient_results
from harness.pki import KeyPool
from harness.postfix import settings_for
from harness.postfix_config import config_for
from harness.results import CaseResult
from harness.world import World, build_case_world, build_world

__all__ = ["DEFAULT_TIMEOUT_S", "Runner"]

#: Seconds a case may take from injection until every recipient has a first-attempt status.
DEFAULT_TIMEOUT_S = 30.0

_PodKey = tuple[str, str, str]  # Postfix image, peer image, container host name


class Runner:
    """Runs cases on real Postfix. One Runner per harness run: it owns the engine connection, the run id and the
    pods.

    Args:
        engine: a connected :class:`~harness.engine.Engine` (default: connect on first use).
        timeout_s: per-case limit in seconds for every recipient to reach a first-attempt status.
        progress: called with one-line progress messages (image builds).
        keep_failed: leave the pod of a failed case running (for a look inside); its Postfix container's name is
            in ``CaseResult.kept_pod``. ``mxharness clean`` removes it later.
        reuse_pods: reset a pod between cases instead of making a new one (default; see the module docstring).
        jobs: how many cases :meth:`run` runs at once, each on its own pod.
        strict: a case whose Postfix warned (``warning:`` lines, "unused parameter" of a configuration folder,
            an unknown policy attribute) fails, with the first warning as its error.

    Use as a context manager: on exit every container of this run is removed, also after Ctrl-C.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        progress: Callable[[str], None] = print,
        keep_failed: bool = False,
        reuse_pods: bool = True,
        jobs: int = 1,
        strict: bool = False,
    ) -> None:
        self._engine = engine
        self.strict = strict
        self.keep_failed = keep_failed
        self.reuse_pods = reuse_pods
        self.jobs = max(1, jobs)
        self.timeout_s = timeout_s
        self.progress = progress
        self.run_id = new_run_id()
        self._kept: set[str] = set()
        self._images: dict[str | None, ImageSet] = {}
        self._facts: dict[str, ImageFacts] = {}
        self._idle: dict[_PodKey, list[CasePod]] = {}
        self._warming: dict[_PodKey, list[Future[CasePod | None]]] = {}
        self._busy: set[CasePod] = set()  # pods serving a case now
        self._lock = threading.RLock()
        self._closed = False
        self.keys = KeyPool()  # the worlds' private keys, shared by position (harness.pki.KeyPool)

    @property
    def engine(self) -> Engine:
        """The engine connection (connects on first use; raises EnvironmentProblem when none answers)."""
        with self._lock:
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
        """Remove this run's pods (idle ones, and after an interrupt the one that was running) and close the
        engine connection. Called from the main thread, it cannot be interrupted: a second Ctrl-C (SIGINT,
        SIGTERM, SIGHUP) while the pods are being removed is ignored, so that none is left running.

        Returns:
            How many containers were removed.
        """
        with _signals_held():
            return self._close()

    def _close(self) -> int:
        with self._lock:
            self._closed = True  # a worker still between two cases must not make a pod now (see _acquire)
            warming = [future for futures in self._warming.values() for future in futures]
            self._warming.clear()
        idle = [pod for pod in (_warmed(future) for future in warming) if pod is not None]
        with self._lock:
            idle += [casepod for pods in self._idle.values() for casepod in pods]
            self._idle.clear()
            busy = list(self._busy)
        for casepod in busy:  # a case still running (after Ctrl-C) ends with an error, not a wait on a dead shell
            casepod.pod.close_shells()
        for casepod in idle:
            casepod.pod.remove()
        removed = 0
        if self._engine is not None:
            removed = remove_leftovers(self._engine, run_id=self.run_id, keep=self._kept)
            self._engine.close()
            self._engine = None
        return removed

    def images(self, release: str | None) -> ImageSet:
        """The pod images for a release, built on first use (raises EnvironmentProblem)."""
        with self._lock:
            if release not in self._images:
                self._images[release] = ensure_images(self.engine, release, progress=self.progress)
            return self._images[release]

    def run(
        self,
        scenarios: Iterable[Scenario],
        *,
        select: Callable[[Scenario, Case], bool] | None = None,
        on_start: Callable[[Scenario, Case], None] | None = None,
    ) -> Iterator[CaseResult]:
        """Run every case of every scenario (or those ``select`` keeps), yielding the results in scenario and
        case order; with ``jobs > 1`` several cases run at once. ``on_start`` is called as a case starts (from
        a worker thread when ``jobs > 1``).

        The work starts with the call, before the first result is asked for: the scenarios' worlds are built
        and the first pods started in the background.

        Raises:
            EnvironmentProblem: no engine, or the images cannot be built (from the call, or from a case).
        """
        # The worlds are built in the background while cases run: the RSA keys of a world take about 0.1 s each
        # to generate, and a case waits only for its own.
        builder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mxharness-world")
        warmer = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mxharness-warm")
        plan: list[tuple[Scenario, Case, Future[World]]] = []
        try:
            for scenario in scenarios:
                cases = [c for c in scenario.cases if select is None or select(scenario, c)]
                if cases:
                    world = builder.submit(build_world, scenario, keys=self.keys)
                    plan.extend((scenario, case, world) for case in cases)
            # Meanwhile the first pods start too (the containers, the peer, the image's facts: about 0.7 s), one
            # per job, each for the first case that will take it; that case resets it, as any reused pod.
            for i, (scenario, case, _) in enumerate(plan[: self.jobs]):
                self._warm(warmer, scenario, case, up_to=i + 1)
        except BaseException:
            builder.shutdown(wait=False, cancel_futures=True)
            warmer.shutdown(wait=False)
            raise
        return self._results(plan, builder, warmer, on_start)

    def _results(
        self,
        plan: list[tuple[Scenario, Case, Future[World]]],
        builder: ThreadPoolExecutor,
        warmer: ThreadPoolExecutor,
        on_start: Callable[[Scenario, Case], None] | None,
    ) -> Iterator[CaseResult]:
        def one(scenario: Scenario, case: Case, world: Future[World]) -> CaseResult:
            if on_start is not None:
                on_start(scenario, case)
            return self.run_case(scenario, case, world=world.result())

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mxharness-case") if self.jobs > 1 else None
        try:
            if pool is None:
                for scenario, case, world in plan:
                    yield one(scenario, case, world)
                return
            futures = [pool.submit(one, s, c, w) for s, c, w in plan]
            for future in futures:
                yield future.result()
        finally:
            # After Ctrl-C (or a consumer that stops early) the queued cases must not start: cancel them, and do not
            # wait for the running ones here — close() removes their pods, which ends them at once.
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            builder.shutdown(wait=False, cancel_futures=True)
            warmer.shutdown(wait=False)  # a pod still starting is taken, or removed by close()

    def run_case(self, scenario: Scenario, case: Case, *, world: World | None = None) -> CaseResult:
        """Run one case, on a reset pod or a new one.

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
        # A configuration folder (postfix.config_dir) is the base; its content filter stays if a server plays it.
        served = {(str(s["address"]), int(str(s["port"]))) for s in world.servers}
        config = config_for(scenario, case)
        settings = settings_for(scenario.postfix, case.postfix, config=config, served=served)
        settings = substitute_settings(settings, world.pki)
        images = self.images(settings.release)
        key = (images.postfix, images.peer, settings.hostname.split(".")[0])
        casepod = self._acquire(key, scenario, case)
        tracker = DeliveryTracker()
        ids = [f"mxh.{self.run_id}.{i}@{scenario.name}.{case.name}.mxharness.test" for i in range(len(case.send))]
        config_issues: list[ScenarioIssue] = []
        main_cf, error, reusable = "", None, False
        try:
            try:
                messages = tuple((m, rfc5322(m, mid)) for m, mid in zip(case.send, ids, strict=True))
                index = scenario.cases.index(case)
                main_cf = casepod.prepare(self._facts_for, settings, world, scenario, index, messages)
                casepod.inject(case.send, ids)
                casepod.wait_for_first_attempts(tracker, case.send, ids, self.timeout_s)
                reusable = True
            except ConfigRejected as exc:
                error, config_issues, reusable = str(exc), exc.issues, True
            except PodError as exc:
                error = str(exc)  # a pod that failed is not trusted again
            postfix_log, peer_log = casepod.logs()
            for line in postfix_log[tracker.fed :]:  # the lines after the last status the wait needed
                tracker.feed(line)
            warnings = (*casepod.current_warnings, *_distinct(w.raw for w in tracker.warnings))
            if self.strict and warnings and error is None:
                error = f"--strict: Postfix warned ({len(warnings)}): {warnings[0]}"
            result = CaseResult(
                scenario=scenario.name,
                case=case.name,
                source_file=scenario.source_file,
                recipients=recipient_results(scenario, case, ids, tracker, peer_log, error),
                # Postfix's own "daemon started" line; the image's version when Postfix did not start (rejected).
                release=tracker.version or self._image_version(images.postfix),
                error=error,
                config_issues=tuple(config_issues),
                server_chains=world.server_chains(),
                server_names=world.server_names(),
                main_cf=main_cf,
                maps=dict(settings.maps),
                config_changes=settings.changes,
                postfix_warnings=warnings,
                postfix_log=postfix_log,
                peer_events=peer_log,
            )
            if not result.passed and self.keep_failed and casepod.pod.postfix is not None:
                result = replace(result, kept_pod=casepod.pod.postfix.name)
                self._kept.update(str(c.id) for c in (casepod.pod.postfix, casepod.pod.peer) if c is not None)
                casepod.pod.detach()
                reusable = False
        finally:
            self._release(key, casepod, reusable)
        return replace(result, duration_s=time.monotonic() - started)

    def _acquire(self, key: _PodKey, scenario: Scenario, case: Case) -> CasePod:
        with self._lock:
            if self._closed:
                raise PodError(f"run {self.run_id} was closed (interrupted): no new pod")
            idle = self._idle.get(key)
            if self.reuse_pods and idle:
                return self._serving(idle.pop())
            warming = self._warming.get(key)
            future = warming.pop(0) if warming else None
        if future is not None and (warmed := _warmed(future)) is not None:
            with self._lock:
                return self._serving(warmed)
        with self._lock:
            if self._closed:
                raise PodError(f"run {self.run_id} was closed (interrupted): no new pod")
            return self._serving(CasePod(self._new_pod(key, scenario, case)))

    def _serving(self, casepod: CasePod) -> CasePod:
        self._busy.add(casepod)
        return casepod

    def _warm(self, pool: ThreadPoolExecutor, scenario: Scenario, case: Case, *, up_to: int) -> None:
        """Start a pod for ``case`` in ``pool`` (:meth:`CasePod.warm`) unless ``up_to`` pods for it are idle or
        starting already (a run after a run: the pytest plugin runs one scenario at a time); :meth:`_acquire`
        takes it. A pod that fails to start is dropped: the case then makes its own, and reports what goes wrong.

        Raises:
            EnvironmentProblem: no engine, or the images cannot be built (as the case would raise it).
        """
        try:
            settings = settings_for(scenario.postfix, case.postfix, config=config_for(scenario, case))
        except Exception:  # the case itself reports what is wrong with its configuration
            return
        images = self.images(settings.release)
        key = (images.postfix, images.peer, settings.hostname.split(".")[0])

        def start() -> CasePod | None:
            casepod = CasePod(self._new_pod(key, scenario, case))
            try:
                casepod.warm(self._facts_for)
            except Exception:  # PodError, or the engine gone: the case makes a pod of its own
                casepod.pod.remove()
                return None
            return casepod

        with self._lock:
            if self._closed or len(self._idle.get(key, [])) + len(self._warming.get(key, [])) >= up_to:
                return
            self._warming.setdefault(key, []).append(pool.submit(start))

    def _new_pod(self, key: _PodKey, scenario: Scenario, case: Case) -> Pod:
        labels = {"mxharness.scenario": scenario.name, "mxharness.case": case.name}
        return Pod(
            self.engine, postfix_image=key[0], peer_image=key[1], run_id=self.run_id, hostname=key[2], labels=labels
        )

    def _release(self, key: _PodKey, casepod: CasePod, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(casepod)
            keep = self.reuse_pods and reusable and casepod.pod.postfix is not None and not self._closed
            if keep:
                self._idle.setdefault(key, []).append(casepod)
        if not keep:
            casepod.pod.remove()

    def _image_version(self, image: str) -> str | None:
        """The mail_version of a Postfix image this run has read facts of (None: not read yet)."""
        with self._lock:
            facts = self._facts.get(image)
        return facts.version if facts else None

    def _facts_for(self, pod: Pod) -> ImageFacts:
        with self._lock:
            facts = self._facts.get(pod.postfix_image)
        if facts is None:
            facts = ImageFacts.read(pod)
            with self._lock:
                self._facts[pod.postfix_image] = facts
        return facts


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ignore SIGINT, SIGTERM and SIGHUP inside the block (main thread only: elsewhere Python cannot set handlers),
    then restore the handlers the process had."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _warmed(future: Future[CasePod | None]) -> CasePod | None:
    """The pod a warm-up made (None: it failed, or was cancelled before it began)."""
    try:
        return future.result()
    except CancelledError:
        return None


def _distinct(lines: Iterable[str]) -> tuple[str, ...]:
    """Postfix log lines without their syslog prefix, each once (a warning repeats per process and attempt)."""
    seen: dict[str, None] = {}
    for line in lines:
        text = line.split("]: ", 1)[-1] if "]: " in line else line
        seen.setdefault(text, None)
    return tuple(seen)
