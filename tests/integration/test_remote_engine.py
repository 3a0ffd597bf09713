"""A remote engine named by DOCKER_HOST=ssh://… works like a local one: this machine's engine, reached through a
throw-away sshd on loopback (keys made for the test), runs a scenario end to end and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ssh_engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a child process whose DOCKER_HOST is this machine's engine over ssh."""
    sshd, ssh = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh")
    if not (Path(sshd).exists() and ssh and os.geteuid() == 0):
        pytest.fail("needs root, sshd and ssh (./dev test installs openssh-server on Debian)")
    for name in ("key", "hostkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    (tmp_path / "authorized_keys").write_text((tmp_path / "key.pub").read_text())
    port = _free_port()
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/hostkey\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\nPidFile {tmp_path}/sshd.pid\n"
    )
    (tmp_path / "ssh_config").write_text(
        f"Host *\n  IdentityFile {tmp_path}/key\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
    )
    # The Docker SDK runs `ssh`; a wrapper first on PATH gives it this test's client configuration.
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {ssh} -F {tmp_path}/ssh_config "$@"\n')
    wrapper.chmod(0o755)
    Path("/run/sshd").mkdir(exist_ok=True)
    log = tmp_path / "sshd.log"
    daemon = subprocess.Popen([sshd, "-D", "-E", str(log), "-f", str(tmp_path / "sshd_config")])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        env = {**os.environ, "DOCKER_HOST": f"ssh://root@127.0.0.1:{port}"}
        env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
        env["MXHARNESS_TEST_SSHD_LOG"] = str(log)
        yield env
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_a_scenario_runs_on_an_engine_reached_over_ssh(ssh_engine: dict[str, str]) -> None:
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "scenarios/seed/facebook.yaml"]
    child = subprocess.Popen(
        command,
        cwd=ROOT,
        env=ssh_engine,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate(timeout=300)
    sshd_log = Path(ssh_engine["MXHARNESS_TEST_SSHD_LOG"]).read_text(errors="replace")[-3000:]
    assert child.returncode == 0, f"exit {child.returncode}\n{out}\n--- stderr ---\n{err}\n--- sshd ---\n{sshd_log}"
    assert "2 passed, 0 failed" in out and "facebook-nexthop-certificate · Postfix 3.7." in out
    # Nothing left on the (remote) engine: the run's containers carry the harness's pid.
    left = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=mxharness.pid={child.pid}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""
