"""A pod serving cases one after another: the steps of one case inside it.

A pod is started either by its first case or ahead of it (:meth:`CasePod.warm`, while the run's worlds are being
built; the peer then serves an empty world). Every case that does not start the pod *resets* it instead of
making a new one: Postfix is stopped (master and all its daemons, so qmgr's memory of dead destinations, the
connection cache and the TLS session cache go), the queue and the data directory are emptied, /etc/postfix is
restored from the image's copy, and the peer swaps in the next world (SIGHUP; old addresses are unbound). What is
left is a pod in the state a fresh one has: the equivalence test (tests/integration/test_pod_reuse.py) runs the
whole scenario library both ways and requires identical outcomes.

Steps of a case (design.md): configure (main.cf, master.cf, maps, trust store; Postfix's own check of parameter
names), start or swap the world, start Postfix once the world serves, wait for master's sockets, start every SMTP
client service once so Postfix checks parameter values, inject each message with ``sendmail`` (all of it one
script in the Postfix container), read the log until every recipient has its first ``status=`` line, and end
once the peer's log has caught up (its ``mark``) and the sessions it saw have closed.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.config_check import fatal_issues, unused_parameter_issues
from harness.engine import Pod
from harness.errors import CaseTimeout, ConfigRejected, PodError
from harness.maillog import DeliveryTracker
from harness.message import rfc5322
from harness.model import Message, Scenario
from harness.postfix import (
    TRUST_DIR,
    PostfixSettings,
    indexed_maps,
    install_script,
    master_sockets,
    merge_master_cf,
    preflight_script,
    read_paths_line,
    render_main_cf,
    reset_script,
    smtp_services,
    start_postfix,
    unused_parameters,
)
from harness.world import EMPTY_WORLD_FILES, World

__all__ = ["CasePod", "ImageFacts"]

#: Where a case's files are copied first; the reset script leaves it alone, then moves the files into place.
STAGE = "/run/mxharness/stage"

#: Seconds for the pod to come up (peer ready, Postfix's master started).
STARTUP_TIMEOUT_S = 30.0
#: Seconds to wait, after Postfix logged a message sent, for the fake server's event about its data.
DATA_GRACE_S = 2.0
#: Seconds without a new peer event after which the fake servers are taken to have reported everything, while a
#: session is still open (Postfix's connection cache keeps one open after its last delivery).
QUIET_S = 0.1
#: Seconds for the peer's mark (the barrier at the end of a case) to be sent and to come back in its log stream:
#: milliseconds normally, generous for a loaded machine; a peer killed from outside ends the wait sooner.
MARK_TIMEOUT_S = 10.0
#: The line the first script of a case prints once master(8) runs.
_STARTED = "mxharness-master-started"
#: Seconds to wait for the ``fatal:`` lines of a service that did not start in the preflight.
FATAL_GRACE_S = 2.0


@dataclass(frozen=True)
class ImageFacts:
    """What the harness needs to know of a Postfix image: its version, its master.cf, its parameter names."""

    version: str
    master_cf: str
    parameters: frozenset[str]
    directories: tuple[str, str] = ("/usr/lib/postfix/sbin", "/var/spool/postfix")  # daemon_, queue_directory

    @staticmethod
    def read(pod: Pod) -> ImageFacts:
        script = (
            "postconf -dh mail_version; echo ---; postconf -dH; echo ---; postconf -xh daemon_directory "
            "queue_directory; echo ---; cat /etc/postfix/master.cf.image"
        )
        code, out = pod.run_postfix(script)  # the shell the case's script then uses: no docker exec of its own
        if code != 0:
            raise PodError(f"cannot read the Postfix image's facts (exit {code}): {out.strip()}", out.splitlines())
        version, names, directories, master_cf = out.split("---\n", 3)
        daemon, queue = directories.split()
        return ImageFacts(version.strip(), master_cf, frozenset(names.split()), (daemon, queue))


@dataclass(eq=False)  # pods are told apart by identity (Runner keeps a set of those serving a case)
class CasePod:
    """A :class:`~harness.engine.Pod` and what the harness remembers of it between cases.

    Attributes:
        pod: the containers (not yet started for a new CasePod).
        cases_run: how many cases this pod has served (0: its containers are not started yet).
        worlds_served: how many worlds the peer has been given (its ``ready`` events count them from 0).
        marks_sent: how many marks the peer has been sent (its ``mark`` events count them from 0).
        postfix_start, peer_start: where the current case's lines begin in the two log streams.
        previous_maps: map paths the last case wrote (the reset removes those outside /etc/postfix).
        previous_paths: the last case's CAfile, CApath, daemon and queue directories (the reset need not ask
            postconf again).
        validated: hashes of configurations Postfix already accepted in this pod (the checks are not repeated).
        config_warnings: per configuration hash, Postfix's "unused parameter" warnings about a configuration
            folder's names; ``current_warnings`` are those of the current case.
    """

    pod: Pod
    cases_run: int = 0
    worlds_served: int = 0
    marks_sent: int = 0
    postfix_start: int = 0
    peer_start: int = 0
    previous_maps: tuple[str, ...] = ()
    previous_paths: tuple[str, str, str, str] | None = None
    validated: set[str] = field(default_factory=set)
    config_warnings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    current_warnings: tuple[str, ...] = ()

    def warm(self, facts_for: Callable[[Pod], ImageFacts]) -> None:
        """Start the pod ahead of its first case, while that case's world is still being built: both containers,
        the peer serving an empty world (:data:`~harness.world.EMPTY_WORLD_FILES`), the image's facts read. The
        first case then resets the pod and swaps its world in, as for every later case: a pod made this way is
        in the state of a fresh one when its case starts.

        Raises:
            PodError: a container did not start, or the peer did not come up.
        """
        pod = self.pod
        pod.create_postfix()
        created = _Background(pod.create_peer, EMPTY_WORLD_FILES)  # while the Postfix container starts
        try:
            pod.start_postfix()
        finally:
            created.join()
        peer = _Background(pod.start_peer)  # side by side with the facts' script
        try:
            facts = facts_for(pod)
        finally:
            peer.join()
        self.worlds_served = 1
        # For the first case's reset: no trust store was installed (the image's CAfile and CApath stay as they
        # are), and the directories are the image's.
        self.previous_paths = ("", "", *facts.directories)
        self._wait_world_ready()

    def prepare(
        self,
        facts_for: Callable[[Pod], ImageFacts],
        settings: PostfixSettings,
        world: World,
        scenario: Scenario,
        index: int,
        messages: tuple[tuple[Message, bytes], ...] = (),
    ) -> str:
        """Bring the pod to the case: fresh or reset, configured, Postfix and the world up, parameters checked.

        Round trips are few on purpose (a ``docker exec`` costs tens of milliseconds): the files and the case's
        ``messages`` (each with its RFC 5322 bytes) travel with one script, written to the shell kept open in the
        Postfix container (:class:`~harness.engine.ShellSession`). While the peer swaps worlds, that script resets,
        installs, checks (parameter names, then values: every SMTP client service is started once stand-alone),
        lets Postfix start as soon as the new world serves and hands the ``sendmail`` messages to Postfix.
        Messages ``via: smtp`` need smtpd running: :meth:`inject` sends those.

        Returns:
            The main.cf written.

        Raises:
            ConfigRejected: Postfix rejects a parameter name or value (nothing was sent).
            PodError: a container or a command failed, or something did not come up in time.
        """
        pod = self.pod
        fresh = self.worlds_served == 0
        if fresh:
            pod.start_postfix()
        assert pod.postfix_log is not None
        self.postfix_start = len(pod.postfix_log.snapshot())
        self.peer_start = len(pod.peer_log.snapshot()) if pod.peer_log else 0
        # The peer comes up (or swaps worlds) while Postfix is reset and configured: the two containers' Docker
        # calls run side by side. No mail goes in before the world reports ready (inject comes after the wait).
        peer = _Background(pod.start_peer if fresh else pod.swap_world, world.peer_files())
        try:
            facts = facts_for(pod)
            version = tuple(int(p) for p in facts.version.split(".")[:3] if p.isdigit())
            master_cf = merge_master_cf(settings.user_master_cf or facts.master_cf, *settings.master_cf)
            trusted = world.trust_pems(settings.trust)
            # A CAfile/CApath the scenario names still gets a valid file: a CA of no one in the world.
            trust = trusted or {"placeholder": world.placeholder_ca_pem()}
            main_cf = render_main_cf(settings, version=version, trusts_any=bool(trusted))
            files = {
                "/etc/postfix/main.cf": main_cf.encode(),
                "/etc/postfix/master.cf": master_cf.encode(),
                **{path: content.encode() for path, content in settings.maps.items()},
                **{f"{TRUST_DIR}/{name}.pem": pem for name, pem in trust.items()},
            }
            mail = {f"/run/mxharness/mail/{i}.eml": data for i, (_, data) in enumerate(messages)}
            senders = [(i, m) for i, (m, _) in enumerate(messages) if m.via == "sendmail"]
            digest = hashlib.sha256(b"\0".join(k.encode() + b"\0" + files[k] for k in sorted(files))).hexdigest()
            check = digest not in self.validated
            staged = {f"{STAGE}{path}": data for path, data in {**files, **mail}.items()}
            code, output = self._configure_and_start(settings, master_cf, senders, staged, fresh=fresh, check=check)
        finally:
            peer.join()
            self.worlds_served += 1
        # Also when Postfix did not start (a rejected configuration): the next case's world swap must find a peer
        # that serves this world (a peer still starting up dies of the SIGHUP).
        self._wait_world_ready()
        if check:
            unused = unused_parameters(output)
            blocking = [u for u in unused if u.name not in settings.user_parameters]
            if blocking:
                raise ConfigRejected(unused_parameter_issues(scenario, index, blocking, facts.parameters))
            self.config_warnings[digest] = tuple(
                f"postconf: warning: {u.file}: unused parameter: {u.name}={u.value}" for u in unused
            )
        self.current_warnings = self.config_warnings.get(digest, ())
        if code == 3:  # a service did not start: Postfix's fatal lines name the parameter; no mail went in
            raise self._rejected(output, settings, scenario, index)
        if code == 4:
            tail = [*pod.postfix_log.snapshot()[-15:], "--- peer events ---"]
            tail += pod.peer_log.snapshot()[-10:] if pod.peer_log else []
            raise PodError(
                f"Postfix was not running {STARTUP_TIMEOUT_S:.0f} s after the start ({pod.state()}). Hint: the "
                "peer's events and Postfix's last lines tell whether the world or Postfix did not come up",
                tail,
            )
        if code == 5:
            lines = pod.postfix_log.snapshot()[-20:]
            raise PodError(f"Postfix's master(8) exited right after its start ({pod.state()})", lines)
        if code != 0:
            raise PodError(f"configuring the Postfix container failed (exit {code}): {output.strip()}")
        if check:
            self.validated.add(digest)
        self.cases_run += 1
        return main_cf

    def _configure_and_start(
        self,
        settings: PostfixSettings,
        master_cf: str,
        senders: list[tuple[int, Message]],
        staged: dict[str, bytes],
        *,
        fresh: bool,
        check: bool,
    ) -> tuple[int, str]:
        """One script in the Postfix container: it resets (a reused pod), moves the staged files into place,
        installs (resolver, trust store, postmap, Postfix's check of names) and — unless a name the scenario set
        is unknown — lets Postfix start once the world serves (exit 4 if master(8) is not running within the
        startup limit, 5 if it exited). Once master has created the sockets of postlogd and tlsmgr (it logs
        ``daemon started`` right after creating all its sockets; a stand-alone smtp(8) started earlier could not
        log its ``fatal:`` line), the script checks the values of a configuration not seen before (exit 3 if a
        service does not start) and hands the ``senders`` to ``sendmail``. Returns the exit code and the
        output."""
        generation = self.worlds_served  # the world being swapped in (the peer counts from 0)
        # -N never: no DSN notification to the sender (it would be a second queue entry for example.test).
        sendmail = [
            f"sendmail -N never -f {shlex.quote(m.from_)} -- {shlex.quote(m.to)} < /run/mxharness/mail/{i}.eml"
            for i, m in senders
        ]
        sockets = master_sockets(master_cf, ("tlsmgr", "postlog"))
        # The value check: a stand-alone smtp(8) needs tlsmgr, which only a running master provides.
        values = [preflight_script(smtp_services(master_cf)), 'if [ -n "$failed" ]; then exit 3; fi'] if check else []
        go = "\n".join(
            [
                f'(cd "$q" && rm -f {" ".join(shlex.quote(s) for s in sockets)})',
                start_postfix(generation),
                _wait_for_master(sockets, STARTUP_TIMEOUT_S),
                f"echo {_STARTED}",
                *values,
                *sendmail,
            ]
        )
        script = [
            "" if fresh else reset_script(self.previous_maps, self.previous_paths),
            f"cp -a {STAGE}/. / && rm -rf {STAGE}",
            install_script(indexed_maps(settings, master_cf), check_names=check),
            # With names Postfix does not know, Postfix is not started: the case is reported as input error. Names
            # from a configuration folder are only warned about, as the real server does.
            _blocking_unused(settings.user_parameters),
            f'if [ -z "$blocking" ]; then\n{go}\nfi' if check else go,
        ]
        self.previous_maps = tuple(settings.maps)
        code, output = self.pod.run_postfix("\n".join(script), staged)
        self.previous_paths = read_paths_line(output)
        if code == 5 or (code == 0 and _STARTED in output):
            # Postfix's own word on its start: "daemon started" (long since logged: the check and sendmail came
            # after it), or the fatal line of a master that exited.
            self._wait_postfix_started()
        return code, output

    def _wait_world_ready(self) -> None:
        pod = self.pod
        generation = self.worlds_served - 1  # the peer counts its worlds from 0
        assert pod.peer_log is not None
        marker = f'"generation": {generation},'

        def ready_or_error(lines: list[str]) -> bool:
            return any(marker in x or '"event": "error"' in x for x in lines[self.peer_start :])

        if not pod.peer_log.wait_for(ready_or_error, STARTUP_TIMEOUT_S):
            raise PodError(
                f"the peer did not report ready within {STARTUP_TIMEOUT_S:.0f} s ({pod.state()})",
                pod.peer_log.snapshot()[-20:],
            )
        lines = pod.peer_log.snapshot()
        errors = [x for x in lines[self.peer_start :] if '"event": "error"' in x]
        if errors:
            raise PodError(f"the peer could not start the world: {errors[0]}", lines[-20:])
        # The case's events start at its world's `ready`: what the old world's servers report while they shut
        # down (a session Postfix abandoned, closed only now) belongs to the case before.
        self.peer_start = next(i for i in range(self.peer_start, len(lines)) if marker in lines[i])

    def _wait_postfix_started(self) -> None:
        pod = self.pod
        assert pod.postfix_log is not None
        if not pod.postfix_log.wait_for(
            lambda ls: any("daemon started" in x or "fatal:" in x for x in ls[self.postfix_start :]), STARTUP_TIMEOUT_S
        ):
            raise PodError(
                f"Postfix did not start within {STARTUP_TIMEOUT_S:.0f} s ({pod.state()}). Hint: a fatal line above "
                "usually names the parameter",
                pod.postfix_log.snapshot()[-20:],
            )
        lines = pod.postfix_log.snapshot()[self.postfix_start :]
        if not any("daemon started" in x for x in lines):
            fatal = next(x for x in lines if "fatal:" in x)
            raise PodError(f"Postfix did not start: {fatal.split(': ', 1)[-1]}", lines[-20:])

    def _rejected(self, output: str, settings: PostfixSettings, scenario: Scenario, index: int) -> ConfigRejected:
        """The preflight found a service that does not start: Postfix's fatal lines as scenario issues."""
        assert self.pod.postfix_log is not None
        log = self.pod.postfix_log
        log.wait_for(lambda ls: any("fatal:" in x for x in ls[self.postfix_start :]), FATAL_GRACE_S)
        lines = log.snapshot()[self.postfix_start :]
        fatal = sorted({x.split(": ", 1)[-1] for x in lines if "fatal:" in x})
        if not fatal:
            fatal = [f"fatal: {line}" for line in output.splitlines() if line.startswith("failed")]
        return ConfigRejected(fatal_issues(scenario, index, fatal, settings.main_cf), lines[-20:])

    def inject(self, messages: list[Message], ids: list[str]) -> None:
        """Hand the ``via: smtp`` messages to Postfix's smtpd (the ``sendmail`` ones went in with :meth:`prepare`).

        Raises:
            PodError: the SMTP submission failed.
        """
        by_smtp = [(m.from_, m.to, rfc5322(m, mid)) for m, mid in zip(messages, ids, strict=True) if m.via == "smtp"]
        if by_smtp:
            self.pod.submit_smtp(by_smtp)

    def wait_for_first_attempts(
        self, tracker: DeliveryTracker, messages: list[Message], ids: list[str], timeout_s: float
    ) -> None:
        """Feed the case's log lines to ``tracker`` until every recipient has a first attempt.

        Raises:
            PodError: a Postfix daemon logged ``fatal:`` (it would be restarted again and again).
            CaseTimeout: not every recipient had a status line within ``timeout_s`` seconds.
        """
        pod = self.pod
        assert pod.postfix_log is not None and pod.peer_log is not None
        fed = self.postfix_start

        def all_decided_or_fatal(lines: list[str]) -> bool:
            nonlocal fed
            for line in lines[fed:]:
                tracker.feed(line)
            fed = len(lines)
            decided = all(tracker.first_attempt(mid, m.to) for m, mid in zip(messages, ids, strict=True))
            return decided or bool(tracker.fatals)

        finished = pod.postfix_log.wait_for(all_decided_or_fatal, timeout_s)
        if not finished and pod.postfix_log.ended:
            # The container went away under the case (killed from outside, the engine stopped): no verdict.
            raise PodError(
                f"the Postfix container stopped during the case ({pod.state()}). Hint: was it removed or killed "
                "from outside (docker rm/kill, mxharness clean --all)?",
                pod.postfix_log.snapshot()[-25:],
            )
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
                f"no first-attempt status for {', '.join(missing)} within {timeout_s:.0f} s ({pod.state()}). "
                "Hint: see the last log lines; raise the limit with --timeout if the world is slow on purpose",
                tail,
            )
        # Postfix logs status=sent once it has the server's 250; the fake server's event for the same data can
        # reach the log stream a moment later. Wait for those, so that `received` is never read too early.
        sent = []
        for message, mid in zip(messages, ids, strict=True):
            attempt = tracker.first_attempt(mid, message.to)
            if attempt is not None and attempt.delivery.status == "sent" and attempt.delivery.relay_address:
                sent.append(f'"message_id": "{mid}"')
        if sent:
            pod.peer_log.wait_for(
                lambda ls: all(any(m in x for x in ls[self.peer_start :]) for m in sent), DATA_GRACE_S
            )
        # The server's other events of the attempts (STARTTLS, the handshake, SNI) likewise: every event the peer
        # wrote so far (a mark is a barrier), and then until every session it saw has closed (a summary is a
        # session's last event), or else until it is quiet (Postfix's connection cache keeps a session open).
        self._mark_peer()
        _wait_sessions_closed(pod.peer_log.snapshot, self.peer_start, DATA_GRACE_S)
        if pod.peer_log.ended:
            # The world died under the case (the peer killed from outside): Postfix then logs "lost connection"
            # or "Connection refused" and defers, which is what the dead pod did, not the world. No verdict.
            raise PodError(
                f"the peer container (fake DNS and servers) stopped during the case ({pod.state()}); what Postfix "
                "logged after that is not the world's doing. Hint: was it removed or killed from outside?",
                [*pod.postfix_log.snapshot()[-15:], "--- peer events ---", *pod.peer_log.snapshot()[-10:]],
            )

    def _mark_peer(self) -> None:
        """Send the peer a mark (:meth:`~harness.engine.Pod.mark_peer`) and wait until it is in the peer's log
        stream. A peer that is gone is left to the caller's check (``peer_log.ended``)."""
        pod = self.pod
        assert pod.peer_log is not None
        marker = f'{{"event": "mark", "n": {self.marks_sent}}}'
        if pod.peer_log.ended:
            return
        try:
            pod.mark_peer(MARK_TIMEOUT_S)
        except PodError:
            if pod.peer_log.wait_for(lambda _: False, DATA_GRACE_S) or not pod.peer_log.ended:
                raise
            return
        self.marks_sent += 1
        if not pod.peer_log.wait_for(lambda ls: any(marker in x for x in ls[self.peer_start :]), MARK_TIMEOUT_S):
            if not pod.peer_log.ended:
                raise PodError(
                    f"the peer did not write its mark within {MARK_TIMEOUT_S:.0f} s ({pod.state()})",
                    pod.peer_log.snapshot()[-10:],
                )

    def logs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The current case's Postfix log lines and peer event lines (without the harness's marks)."""
        postfix = self.pod.postfix_log.snapshot()[self.postfix_start :] if self.pod.postfix_log else []
        peer = self.pod.peer_log.snapshot()[self.peer_start :] if self.pod.peer_log else []
        return tuple(postfix), tuple(x for x in peer if '"event": "mark"' not in x)


def _wait_for_master(sockets: list[str], limit_s: float) -> str:
    """Shell: wait until master(8) runs (its pid file names a live process; ``postfix status`` would log a line
    each time) and has created ``sockets`` (paths under queue_directory ``$q``; the caller removed them before
    the start): master creates its services' sockets in master.cf order and then logs ``daemon started``. Exit 4
    after about ``limit_s`` seconds, 5 if master exits in the meantime."""
    tries = int(limit_s / 0.001)
    present = " && ".join(f'[ -e "$q"/{shlex.quote(s)} ]' for s in sockets) or "true"
    return (
        'pidfile="$q/pid/master.pid"; n=0\n'
        'until m=; { read -r m < "$pidfile"; } 2>/dev/null; [ -n "$m" ] && kill -0 "$m" 2>/dev/null; do\n'
        f"  n=$((n+1)); [ $n -lt {tries} ] || exit 4; sleep 0.001\n"
        "done\n"
        f"until {present}; do\n"
        '  kill -0 "$m" 2>/dev/null || exit 5\n'
        f"  n=$((n+1)); [ $n -lt {tries} ] || exit 4; sleep 0.001\n"
        "done"
    )


class _Background:
    """``function(*args)`` in a thread; :meth:`join` waits and re-raises what it raised."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                function(*args)
            except BaseException as exc:  # handed to the caller by join()
                self._error = exc

        self._thread = threading.Thread(target=run, name="mxharness-peer", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _blocking_unused(user_parameters: frozenset[str]) -> str:
    """Shell: ``blocking`` = the "unused parameter" lines of ``$unused`` not about a configuration folder's names."""
    if not user_parameters:
        return 'blocking="$unused"'
    names = "|".join(re.escape(n) for n in sorted(user_parameters))
    return f"blocking=$(printf '%s\\n' \"$unused\" | grep -v -E {shlex.quote(f'unused parameter: ({names})=')} || true)"


def _wait_sessions_closed(snapshot: Callable[[], list[str]], start: int, limit_s: float) -> None:
    """Return once every SMTP session in the peer's events from line ``start`` on that has a ``connect`` event
    also has its ``session`` summary (written when it closes, after all its other events); with a session still
    open, once no new line came for :data:`QUIET_S` seconds. At most ``limit_s`` seconds. The caller has seen
    the peer's mark first: every event written before it is in ``snapshot()``."""
    deadline = time.monotonic() + limit_s
    opened: set[str] = set()
    closed: set[str] = set()
    seen, since = start, time.monotonic()
    while True:
        lines = snapshot()
        for line in lines[seen:]:
            if (session := _session_id(line, '"stage": "connect"')) is not None:
                opened.add(session)
            elif (session := _session_id(line, '"event": "session"')) is not None:
                closed.add(session)
        now = time.monotonic()
        if len(lines) != seen:
            seen, since = len(lines), now
        if opened <= closed or now - since >= QUIET_S or now >= deadline:
            return
        time.sleep(0.005)


def _session_id(line: str, kind: str) -> str | None:
    """The ``session`` field of a peer event line of ``kind`` (a JSON fragment), else None."""
    if kind not in line:
        return None
    _, _, rest = line.partition('"session": "')
    return rest.partition('"')[0] or None
