"""Without a two-way stream to an exec (the Docker SDK over the system's ssh client), a pod runs each script with
a ``docker exec`` of its own (harness.engine.Pod, NoAttachedStream). Fakes stand for the engine: the real path is
tested on Docker in tests/integration/test_shell_session.py and by bench/remote_engine.py."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from harness.engine import Pod


class FakeApi:
    def exec_create(self, container_id: str, cmd: list[str], **kwargs: Any) -> dict[str, str]:
        return {"Id": "exec-1"}

    def exec_start(self, exec_id: str, socket: bool = False) -> Any:
        # What docker-py does on an ssh:// connection made with use_ssh_client: no paramiko channel to hand out.
        raise AttributeError("'SocketIO' object has no attribute 'channel'")


class FakeContainer:
    id = "c1"

    def __init__(self) -> None:
        self.archives: list[dict[str, bytes]] = []
        self.commands: list[list[str]] = []

    def put_archive(self, path: str, data: bytes) -> bool:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            self.archives.append({m.name: tar.extractfile(m).read() for m in tar.getmembers()})  # type: ignore[union-attr]
        return True

    def exec_run(self, cmd: list[str], **kwargs: Any) -> tuple[int, bytes]:
        self.commands.append(cmd)
        return 0, b"ran\n"


class FakeEngine:
    api_timeout_s = 120

    class client:  # stands for docker.DockerClient
        api = FakeApi()


def test_scripts_go_through_docker_exec_when_no_stream_can_be_attached() -> None:
    pod = Pod(FakeEngine(), postfix_image="p", peer_image="q", run_id="r")  # type: ignore[arg-type]
    container = FakeContainer()
    pod.postfix = container  # type: ignore[assignment]
    assert pod.run_postfix("echo hi", {"/etc/postfix/main.cf": b"x = 1\n"}) == (0, "ran\n")
    assert pod.run_postfix("echo again") == (0, "ran\n")
    assert container.archives == [{"etc/postfix/main.cf": b"x = 1\n"}]
    # The same wrapping as the shell's: a subshell with stdin from /dev/null, stderr with stdout.
    assert container.commands == [
        ["sh", "-c", "(\necho hi\n) </dev/null 2>&1"],
        ["sh", "-c", "(\necho again\n) </dev/null 2>&1"],
    ]
