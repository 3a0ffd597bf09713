"""The Docker side: the engine connection, the pod's two containers, file transfer, log streams and cleanup.

This module and :mod:`harness.images` are the only ones that import ``docker``. Everything created here carries
the labels ``mxharness=1`` and ``mxharness.run=<run id>`` so that a crashed run's leftovers can be found and removed
(:func:`remove_leftovers`), and concurrent runs never remove each other's containers.

The pod (design.md): a Postfix container with ``network_mode=none`` (loopback only, no route out) and a peer
container with ``network_mode=container:<postfix>``, sharing that loopback. The peer binds every scenario address
on ``lo`` (it needs ``CAP_NET_ADMIN``), serves DNS on 127.0.0.53 and the fake SMTP servers. It also shares the
Postfix container's PID namespace, so that a fake server can tell which smtp(8) process opened a connection.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shlex
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import cast

import docker
import docker.errors
from docker.models.containers import Container

from harness.errors import EnvironmentProblem, PodError

__all__ = ["LABEL", "RUN_LABEL", "Engine", "LogStream", "Pod", "new_run_id", "remove_leftovers"]

LABEL = "mxharness"
RUN_LABEL = "mxharness.run"
PID_LABEL = "mxharness.pid"
HOST_LABEL = "mxharness.host"
#: Seconds a Docker API call may take before it counts as hung; the environment variable MXHARNESS_DOCKER_TIMEOUT
#: (seconds) overrides it for a slow remote engine.
API_TIMEOUT_S = 120
#: Seconds the first call to the engine (its ping) may take: an engine that accepts and never answers is an
#: environment problem within this time, not after a whole API timeout.
PING_TIMEOUT_S = 10


def new_run_id() -> str:
    """A short random id that labels everything one harness run creates."""
    return uuid.uuid4().hex[:12]


class Engine:
    """A connection to the Docker engine (``DOCKER_HOST`` or the local socket).

    Everything the harness does goes through the engine's API (files by archive, commands by exec, logs by
    stream, images built from a sent context), so a remote engine works like a local one: ``tcp://…`` as the
    Docker SDK supports it, ``ssh://user@host`` through the system's ``ssh`` client (as the docker CLI does).

    Attributes:
        api_timeout_s: seconds an API call may take (:data:`API_TIMEOUT_S`, or MXHARNESS_DOCKER_TIMEOUT).

    Raises:
        EnvironmentProblem: no engine answers within :data:`PING_TIMEOUT_S`, or MXHARNESS_DOCKER_TIMEOUT is not a
            positive number of seconds.
    """

    def __init__(self) -> None:
        self.api_timeout_s = _api_timeout()
        try:
            ssh = os.environ.get("DOCKER_HOST", "").startswith("ssh://")
            self.client = docker.from_env(timeout=min(PING_TIMEOUT_S, self.api_timeout_s), use_ssh_client=ssh)
            self.client.ping()
            self.client.api.timeout = self.api_timeout_s
        except (docker.errors.DockerException, OSError) as exc:
            raise EnvironmentProblem(
                f"no Docker engine is reachable: {exc}. Hint: run `./dev setup` (installs and starts one on "
                "Debian/Ubuntu as root), or start Docker and check `docker info` / DOCKER_HOST"
            ) from None

    def close(self) -> None:
        """Close the HTTP connection pool to the engine."""
        self.client.close()


def _api_timeout() -> int:
    """:data:`API_TIMEOUT_S`, or the whole seconds MXHARNESS_DOCKER_TIMEOUT gives (raises EnvironmentProblem if bad)."""
    text = os.environ.get("MXHARNESS_DOCKER_TIMEOUT", "").strip()
    if not text:
        return API_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise EnvironmentProblem(
            f"MXHARNESS_DOCKER_TIMEOUT={text!r} is not a number of seconds. Hint: e.g. MXHARNESS_DOCKER_TIMEOUT=300"
        )
    return math.ceil(seconds)


@dataclass
class LogStream:
    """A container's log lines, read by a background thread as they are written (timestamps from Docker).

    Lines are ``<RFC 3339 timestamp> <text>``; ``lines`` grows while the container runs.
    """

    container: Container
    lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    ended: bool = False

    def start(self) -> LogStream:
        self._thread = threading.Thread(target=self._read, name=f"logs-{self.container.name}", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        buffer = b""
        try:
            for chunk in self.container.logs(stream=True, follow=True, timestamps=True, stdout=True, stderr=True):
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                if complete:
                    with self._cond:
                        self.lines.extend(c.decode("utf-8", "replace").rstrip("\r") for c in complete)
                        self._cond.notify_all()
        except Exception:  # the container went away: the stream simply ends
            pass
        finally:
            with self._cond:
                if buffer:
                    self.lines.append(buffer.decode("utf-8", "replace"))
                self.ended = True
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float) -> bool:
        """Block until ``predicate(lines)`` is true, the stream ends, or ``timeout_s`` seconds pass.

        Returns:
            Whether the predicate became true.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    return predicate(self.lines)
                self._cond.wait(min(remaining, 0.5))
            return True

    def snapshot(self) -> list[str]:
        """A copy of the lines read so far."""
        with self._cond:
            return list(self.lines)


class NoAttachedStream(Exception):
    """The engine connection cannot give a two-way stream to an exec (see :class:`ShellSession`)."""


class ShellSession:
    """A long-lived ``sh`` in a container, fed one script after another over an attached ``docker exec`` stream.

    A reused pod runs a few scripts per case; a ``docker exec`` and an archive copy each cost a Docker round trip
    (60-120 ms on this project's machines), a script written to an open shell a few milliseconds. Files travel
    inside the script (a base64 tar unpacked with ``tar -x``), so a case's files and commands are one write.
    Every script runs in a subshell with stdin from /dev/null (it can neither read the following scripts nor
    leave variables behind); its output ends with a line holding a random token and the exit code.

    Args:
        client: the engine's Docker client.
        container: the container to run ``sh`` in (running).
        timeout_s: seconds a script may take before the session counts as hung (default :data:`API_TIMEOUT_S`).

    Raises:
        docker.errors.DockerException: the engine refused the exec.
        NoAttachedStream: the connection to the engine gives no two-way stream (the Docker SDK over the system's
            ssh client); :class:`Pod` then runs each script with ``docker exec``.
    """

    def __init__(self, client: docker.DockerClient, container: Container, timeout_s: float | None = None) -> None:
        api = client.api
        exec_id = api.exec_create(container.id, ["sh"], stdin=True, stdout=True, stderr=True)["Id"]
        try:
            self._response = api.exec_start(exec_id, socket=True)
        except AttributeError as exc:  # docker-py looks for a paramiko channel on an ssh:// connection
            raise NoAttachedStream(str(exc)) from None
        # A unix-socket connection comes wrapped in a SocketIO (the socket is its _sock); a tcp:// one is a socket.
        raw = getattr(self._response, "_sock", self._response)
        if not all(hasattr(raw, name) for name in ("sendall", "recv", "settimeout")):
            self._response.close()
            raise NoAttachedStream(f"{type(raw).__name__} is not a socket")
        self._socket = cast(socket.socket, raw)
        self._socket.settimeout(API_TIMEOUT_S if timeout_s is None else timeout_s)
        self._lock = threading.Lock()

    def run(
        self, script: str, files: Mapping[str, bytes] | None = None, *, timeout_s: float | None = None
    ) -> tuple[int, str]:
        """Unpack ``files`` (absolute path -> bytes, see :func:`_tar`) and run ``script``.

        Args:
            timeout_s: seconds this script may take (default: the session's timeout).

        Returns:
            (exit code, combined stdout and stderr).

        Raises:
            OSError: the shell went away (container stopped) or did not finish within the timeout.
        """
        token = uuid.uuid4().hex
        unpack = ""
        if files:
            encoded = base64.encodebytes(_tar(files)).decode()
            unpack = f"base64 -d <<'MXH_FILES_{token}' | tar -x -C /\n{encoded}MXH_FILES_{token}\n"
        text = f"{_subshell(unpack + script)}\nprintf '\\n@@{token} %s\\n' $?\n"
        marker = f"\n@@{token} ".encode()
        with self._lock:
            default = self._socket.gettimeout()
            if timeout_s is not None:
                self._socket.settimeout(timeout_s)
            try:
                self._socket.sendall(text.encode())
                output = b""
                while marker not in output or not output.endswith(b"\n"):
                    output += self._next_frame()
            finally:
                self._socket.settimeout(default)
        body, _, tail = output.rpartition(marker)
        return int(tail.strip() or b"-1"), body.decode("utf-8", "replace")

    def _next_frame(self) -> bytes:
        """The payload of the next frame of Docker's multiplexed stream (8-byte header: stream, size)."""
        header = self._read_exactly(8)
        return self._read_exactly(int.from_bytes(header[4:], "big"))

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._socket.recv(size - len(data))
            if not chunk:
                raise OSError("the shell's stream ended (the container stopped?)")
            data += chunk
        return data

    def close(self) -> None:
        """End the shell (end of input) and close the stream; never raises. A thread waiting for a script's
        output (another thread's) gets an OSError at once: the socket is shut down first, which a plain close
        would not do for a read already under way."""
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._socket.close()
            self._response.close()
        except Exception:  # best effort: the container may be gone already
            pass


class Pod:
    """One pod: Postfix container + peer container sharing its network namespace.

    Use as a context manager; ``__exit__`` (and :meth:`remove`) removes both containers whatever happened.

    Args:
        engine: the engine connection.
        postfix_image: tag of the Postfix image.
        peer_image: tag of the peer image.
        run_id: the run's label value.
        hostname: the container host name (shows as the syslog host in Postfix's log).
        labels: extra labels (scenario, case) for humans looking at ``docker ps``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        postfix_image: str,
        peer_image: str,
        run_id: str,
        hostname: str = "mail",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.postfix_image = postfix_image
        self.peer_image = peer_image
        # The owner's pid and host let `mxharness clean` tell a crashed run's leftovers from a run still going.
        owner = {PID_LABEL: str(os.getpid()), HOST_LABEL: socket.gethostname()}
        self.labels = {LABEL: "1", RUN_LABEL: run_id, **owner, **(labels or {})}
        self.hostname = hostname
        self.postfix: Container | None = None
        self.peer: Container | None = None
        self.postfix_log: LogStream | None = None
        self.peer_log: LogStream | None = None
        self._shells: dict[str, ShellSession] = {}
        self._exec_only = False  # no attached streams on this engine connection: a docker exec per script

    def __enter__(self) -> Pod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def create_postfix(self) -> None:
        """Create the Postfix container (not started yet: :meth:`start_postfix`).

        Raises:
            PodError: the engine refused.
        """
        try:
            self.postfix = self.engine.client.containers.create(
                self.postfix_image,
                network_mode="none",
                init=True,  # docker-init reaps the daemons' orphans when Postfix stops between two cases
                hostname=self.hostname,
                labels={**self.labels, "mxharness.role": "postfix"},
                # IPv6 is off in a container without a network; scenario AAAA addresses need it on loopback.
                sysctls={"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.lo.disable_ipv6": "0"},
            )
        except (docker.errors.DockerException, OSError) as exc:  # OSError: requests' timeout of a hung call
            raise PodError(f"cannot create the Postfix container ({self.postfix_image}): {exc}") from None

    def start_postfix(self) -> None:
        """Start the Postfix container (created first if :meth:`create_postfix` was not called); Postfix itself
        starts only when a case's script lets it (containers/postfix/start-postfix).

        Raises:
            PodError: the engine refused to create or start it.
        """
        if self.postfix is None:
            self.create_postfix()
        assert self.postfix is not None
        try:
            self.postfix.start()
        except (docker.errors.DockerException, OSError) as exc:  # OSError: requests' timeout of a hung call
            raise PodError(f"cannot start the Postfix container ({self.postfix_image}): {exc}") from None
        self.postfix_log = LogStream(self.postfix).start()

    def create_peer(self, files: Mapping[str, bytes]) -> None:
        """Create the peer container in the Postfix container's network and PID namespaces and copy ``files``
        (path → bytes, absolute paths) into it. The Postfix container must exist (created is enough: Docker
        joins the namespaces at the start).

        Raises:
            PodError: the engine refused.
        """
        assert self.postfix is not None, "create_postfix() first"
        try:
            self.peer = self.engine.client.containers.create(
                self.peer_image,
                network_mode=f"container:{self.postfix.id}",
                # Postfix's PID namespace too: a fake server reads which smtp(8) process opened a connection
                # (harness._smtp_client_pid), which needs SYS_PTRACE to read the fds of user postfix's processes.
                pid_mode=f"container:{self.postfix.id}",
                cap_add=["NET_ADMIN", "SYS_PTRACE"],
                labels={**self.labels, "mxharness.role": "peer"},
            )
            self.peer.put_archive("/", _tar(files))
        except (docker.errors.DockerException, OSError) as exc:  # OSError: requests' timeout of a hung call
            raise PodError(f"cannot create the peer container ({self.peer_image}): {exc}") from None

    def start_peer(self, files: Mapping[str, bytes] | None = None) -> None:
        """Start the peer container, created with ``files`` first if :meth:`create_peer` was not called. The
        Postfix container must be running.

        Raises:
            PodError: the engine refused, or the Postfix container is not running.
        """
        if self.peer is None:
            self.create_peer(files or {})
        assert self.peer is not None
        try:
            self.peer.start()
        except (docker.errors.DockerException, OSError) as exc:  # OSError: requests' timeout of a hung call
            raise PodError(f"cannot start the peer container ({self.peer_image}): {exc}") from None
        self.peer_log = LogStream(self.peer).start()

    def swap_world(self, files: Mapping[str, bytes]) -> None:
        """Give the running peer the next case's world: write ``files`` over the old ones and send it SIGHUP (the
        peer then serves the new world and reports ``ready`` with the next generation). One write to a shell
        kept open in the peer (:class:`ShellSession`).

        Raises:
            PodError: the engine refused, or the peer is gone.
        """
        assert self.peer is not None, "start_peer() first"
        # The pid file is the peer's own (harness.peer --pid-file): in the shared PID namespace it is not pid 1.
        code, output = self._shell_run("peer", 'kill -HUP "$(cat /run/peer.pid)"', files)
        if code != 0:
            raise PodError(f"cannot swap the peer's world (exit {code}): {output.strip()}", output.splitlines())

    def mark_peer(self, timeout_s: float) -> None:
        """Have the peer write a ``mark`` event (SIGUSR1; :mod:`harness.peer`): every event it wrote before has
        reached :attr:`peer_log` once the mark has (one writer, one stream, in order).

        Args:
            timeout_s: seconds the signal may take to send (a shell in a peer container killed from outside
                may hang rather than end).

        Raises:
            PodError: the engine refused, the peer is gone, or the limit passed.
        """
        assert self.peer is not None, "start_peer() first"
        code, output = self._shell_run("peer", 'kill -USR1 "$(cat /run/peer.pid)"', None, timeout_s=timeout_s)
        if code != 0:
            raise PodError(f"cannot signal the peer (exit {code}): {output.strip()}", output.splitlines())

    def run_postfix(self, script: str, files: Mapping[str, bytes] | None = None) -> tuple[int, str]:
        """Write ``files`` (absolute path -> bytes; mode 0644, an mtime a minute old) into the Postfix container
        and run ``script`` there with ``sh`` as root, in a shell kept open across calls (:class:`ShellSession`).

        Returns:
            (exit code, combined output).

        Raises:
            PodError: the container or the engine went away.
        """
        return self._shell_run("postfix", script, files)

    def _shell_run(
        self, role: str, script: str, files: Mapping[str, bytes] | None, *, timeout_s: float | None = None
    ) -> tuple[int, str]:
        container = self.postfix if role == "postfix" else self.peer
        assert container is not None
        try:
            if role not in self._shells and not self._exec_only:
                try:
                    self._shells[role] = ShellSession(self.engine.client, container, self.engine.api_timeout_s)
                except NoAttachedStream:
                    self._exec_only = True
            if self._exec_only:
                return _exec_once(container, script, files)
            return self._shells[role].run(script, files, timeout_s=timeout_s)
        except (docker.errors.DockerException, OSError) as exc:
            broken = self._shells.pop(role, None)
            if broken is not None:
                broken.close()
            raise PodError(f"the shell in the {role} container failed: {exc} ({self.state()})") from None

    def submit_smtp(self, messages: list[tuple[str, str, bytes]], port: int = 25) -> None:
        """Hand messages to Postfix's smtpd over SMTP from the peer container (same loopback), as mail from the
        internet arrives: one SMTP session per message, to 127.0.0.1:``port``.

        Args:
            messages: ``(envelope sender, recipient, RFC 5322 bytes)`` each.

        Raises:
            PodError: the copy or the session failed (the message carries smtpd's reply).
        """
        assert self.peer is not None, "start_peer() first"
        files = {f"/run/mxharness/submit/{i}.eml": data for i, (_, _, data) in enumerate(messages)}
        envelopes = [[sender, rcpt, f"/run/mxharness/submit/{i}.eml"] for i, (sender, rcpt, _) in enumerate(messages)]
        files["/run/mxharness/submit/envelopes.json"] = json.dumps(envelopes).encode()
        script = (
            "import json, smtplib\n"
            "for sender, rcpt, path in json.load(open('/run/mxharness/submit/envelopes.json')):\n"
            f"    with smtplib.SMTP('127.0.0.1', {port}, local_hostname='client.mxharness.test', timeout=20) as s:\n"
            "        s.sendmail(sender, [rcpt], open(path, 'rb').read())\n"
        )
        command = f"/opt/peer/bin/python -c {shlex.quote(script)}; code=$?; rm -rf /run/mxharness/submit; exit $code"
        code, text = self._shell_run("peer", command, files)
        if code != 0:
            last = text.strip().splitlines()[-1:] or [""]
            raise PodError(
                f"SMTP submission to Postfix's smtpd on 127.0.0.1:{port} failed: {last[0]}", text.splitlines()
            )

    def state(self) -> str:
        """Both containers' states, e.g. ``postfix=running peer=exited(1)``, for error messages."""
        parts = []
        for role, container in (("postfix", self.postfix), ("peer", self.peer)):
            if container is None:
                parts.append(f"{role}=not created")
                continue
            try:
                container.reload()
                status = container.status
                code = container.attrs.get("State", {}).get("ExitCode")
                parts.append(f"{role}={status}" + (f"({code})" if status == "exited" else ""))
            except (docker.errors.DockerException, OSError):
                parts.append(f"{role}=gone")
        return " ".join(parts)

    def detach(self) -> None:
        """Forget both containers without removing them (``--keep``); :meth:`remove` then does nothing."""
        for shell in self._shells.values():
            shell.close()
        self._shells.clear()
        self.peer = self.postfix = None

    def close_shells(self) -> None:
        """Close the shells kept open in the containers: a script still running fails at once (a pod removed
        from under a case, e.g. after Ctrl-C, whose shell stream might not end by itself). Never raises."""
        for shell in list(self._shells.values()):
            shell.close()
        self._shells.clear()

    def remove(self) -> None:
        """Remove both containers (force); never raises."""
        self.close_shells()
        # Side by side: each removal waits for its container's processes to die.
        removals = [threading.Thread(target=_remove, args=(c,)) for c in (self.peer, self.postfix) if c is not None]
        for removal in removals:
            removal.start()
        for removal in removals:
            removal.join()
        self.peer = self.postfix = None


def _subshell(script: str) -> str:
    """``script`` as every pod script runs: in a subshell (its variables and ``exit`` stay there), stdin from
    /dev/null (it cannot read what follows it on the shell's input), stderr with stdout."""
    return f"(\n{script}\n) </dev/null 2>&1"


def _exec_once(container: Container, script: str, files: Mapping[str, bytes] | None) -> tuple[int, str]:
    """What :meth:`ShellSession.run` does, with an archive copy and a ``docker exec`` of its own."""
    if files:
        container.put_archive("/", _tar(files))
    code, output = container.exec_run(["sh", "-c", _subshell(script)])
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else ""
    return (-1 if code is None else code), text


def _remove(container: Container) -> None:
    """Remove a container and its anonymous volumes (force); never raises."""
    try:
        container.remove(force=True, v=True)
    except (docker.errors.DockerException, OSError):
        pass


def remove_leftovers(
    engine: Engine, *, run_id: str | None = None, keep: Collection[str] = (), include_live: bool = False
) -> int:
    """Remove containers labelled by mxharness.

    Args:
        run_id: only this run's containers (a run cleaning up after itself); None: every run's.
        keep: container ids not to remove (pods kept by ``--keep``).
        include_live: with ``run_id=None``, also remove containers of runs whose process is still alive on this
            host; by default those are left alone, so that a clean never breaks a concurrent run.

    Returns:
        How many containers were removed.
    """
    label = f"{RUN_LABEL}={run_id}" if run_id else LABEL
    removed = 0
    for container in engine.client.containers.list(all=True, filters={"label": label}):
        if container.id in keep or (run_id is None and not include_live and _owner_alive(container.labels)):
            continue
        try:
            container.remove(force=True, v=True)
            removed += 1
        except (docker.errors.DockerException, OSError):
            pass
    return removed


def _owner_alive(labels: Mapping[str, str]) -> bool:
    """Whether the harness process that made a container still runs (on this host; elsewhere: assume so)."""
    if labels.get(HOST_LABEL) != socket.gethostname():
        return labels.get(HOST_LABEL) is not None
    try:
        os.kill(int(labels.get(PID_LABEL, "0")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(labels.get(PID_LABEL, "0")) > 0


def _tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of ``files`` (absolute path → bytes), mode 0644, owned by root.

    No folder entries: the engine creates missing parents, and an entry for an existing folder such as /tmp
    would reset its mode.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.strip("/"))
            # An old mtime: Postfix re-reads a main.cf (or map source) modified in the last couple of seconds
            # every 300 ms until it is "stable", which cost two seconds per case.
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time()) - 60
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
