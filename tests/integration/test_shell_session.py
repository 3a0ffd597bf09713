"""The shell the harness keeps open in each container (harness.engine.ShellSession), on a real Postfix container."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.engine import Pod, ShellSession
from harness.errors import PodError
from harness.runner import Runner


@pytest.fixture
def pod(mxharness_runner: Runner) -> Iterator[Pod]:
    images = mxharness_runner.images(None)
    with Pod(
        mxharness_runner.engine, postfix_image=images.postfix, peer_image=images.peer, run_id=mxharness_runner.run_id
    ) as pod:
        pod.start_postfix()
        yield pod


def test_scripts_run_one_after_another_with_their_exit_code_and_output(pod: Pod) -> None:
    assert pod.run_postfix("echo one; exit 3") == (3, "one\n")
    # A script's variables do not outlive it (each runs in a subshell), and output without a final newline is kept.
    assert pod.run_postfix('x=1; printf "%s" "no newline"') == (0, "no newline")
    assert pod.run_postfix('echo "x=[$x]"; echo err >&2') == (0, "x=[]\nerr\n")


def test_a_script_cannot_read_the_scripts_that_follow(pod: Pod) -> None:
    # stdin is /dev/null: a command reading stdin gets end of input instead of the harness's next script.
    assert pod.run_postfix("cat; echo read-nothing") == (0, "read-nothing\n")
    assert pod.run_postfix("echo still-here") == (0, "still-here\n")


def test_files_arrive_with_the_script_mode_0644_and_an_old_mtime(pod: Pod) -> None:
    files = {"/run/t/a.txt": b"alpha\n", "/run/t/sub/b.bin": bytes(range(256)) * 300}
    code, out = pod.run_postfix("stat -c '%a %Y' /run/t/a.txt; cat /run/t/a.txt; wc -c < /run/t/sub/b.bin", files)
    stat, content, size = out.splitlines()
    mode, mtime = stat.split()[0], int(stat.split()[1])
    assert (code, mode, content, size) == (0, "644", "alpha", str(256 * 300))
    # A minute in the past: Postfix re-reads a main.cf modified in the last seconds until it looks stable.
    assert time.time() - 90 < mtime < time.time() - 30


def test_a_dead_container_is_a_pod_error_not_a_hang(pod: Pod) -> None:
    assert pod.run_postfix("true") == (0, "")
    assert pod.postfix is not None
    pod.postfix.kill()
    with pytest.raises(PodError, match="shell in the postfix container failed"):
        pod.run_postfix("echo never")


def test_exit_ends_the_script_not_the_shell_and_a_closed_session_raises(pod: Pod, mxharness_runner: Runner) -> None:
    assert pod.postfix is not None
    session = ShellSession(mxharness_runner.engine.client, pod.postfix, timeout_s=10)
    assert session.run("exit 0") == (0, "")
    assert session.run("echo alive") == (0, "alive\n")
    session.close()
    with pytest.raises(OSError):
        session.run("echo closed")
