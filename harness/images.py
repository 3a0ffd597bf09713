"""The pod's images, built from ``containers/`` and tagged by the hash of their inputs.

* ``mxharness/base:<suite>`` — a plain Debian of that suite: pulled (``debian:<suite>-slim``) where a registry
  answers, else bootstrapped from the Debian mirror with ``mmdebstrap`` and ``docker import`` (design.md: no
  registry on these machines), so the harness works air-gapped.
* ``mxharness/postfix:<suite>-<hash>`` — Postfix from that suite (containers/postfix).
* ``mxharness/peer:<hash>`` — Python with aiosmtpd and dnslib plus the peer side of the harness (containers/peer).
  Its Python packages are wheels built on the host (``pip wheel``; set ``MXHARNESS_WHEELHOUSE`` to a folder of
  wheels to build without an index).

A tag names the hash of everything that goes into the image (Dockerfile, files, base image id, wheel versions),
so a warm run finds every image and builds nothing, and any change of input rebuilds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker.errors

from harness.engine import LABEL, Engine
from harness.errors import EnvironmentProblem
from harness.releases import DEFAULT_RELEASE, RELEASES, release_error, suite_for_release

__all__ = ["DEFAULT_RELEASE", "RELEASES", "ImageSet", "ImageState", "ensure_images", "image_states", "suite_for"]

#: The peer always runs on this suite (its Python must match the host-built wheels' tags: pure Python here).
PEER_SUITE = "bookworm"
PEER_PACKAGES = ("aiosmtpd", "atpublic", "attrs", "dnslib")
PEER_MODULES = (
    "__init__.py",
    "errors.py",
    "_dns_zone.py",
    "dns.py",
    "_smtp_client_pid.py",
    "_smtp_endpoint.py",
    "_smtp_tls.py",
    "_smtp_session.py",
    "_smtp_protocol.py",
    "smtp.py",
    "_world_spec.py",
    "peer.py",
)

HERE = Path(__file__).resolve().parent
CONTAINERS = HERE.parent / "containers"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageSet:
    """The two image tags a pod needs."""

    postfix: str
    peer: str


def suite_for(release: str | None) -> str:
    """The Debian suite for a Postfix release (``3.7``) or a suite name given directly (``bookworm``).

    Raises:
        EnvironmentProblem: unknown release.
    """
    suite = suite_for_release(release)
    if suite is None:
        raise EnvironmentProblem(release_error(str(release)))
    return suite


def ensure_images(engine: Engine, release: str | None = None, *, progress: Progress = print) -> ImageSet:
    """Make sure the Postfix image of ``release`` and the peer image exist, building what is missing.

    Raises:
        EnvironmentProblem: a base image could be neither pulled nor bootstrapped, or a build failed.
    """
    suite = suite_for(release)
    return ImageSet(postfix=_postfix_image(engine, suite, progress), peer=_peer_image(engine, progress))


def _postfix_tag(engine: Engine, suite: str, base: str) -> str:
    return f"mxharness/postfix:{suite}-{_hash([_image_id(engine, base)], _files(CONTAINERS / 'postfix'))}"


def _postfix_image(engine: Engine, suite: str, progress: Progress) -> str:
    base = _base_image(engine, suite, progress)
    tag = _postfix_tag(engine, suite, base)
    if not _exists(engine, tag):
        progress(f"building {tag} (Postfix from Debian {suite})")
        _build(engine, CONTAINERS / "postfix", tag, base)
    return tag


def _peer_inputs() -> tuple[list[str], dict[str, bytes]]:
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in PEER_PACKAGES]
    sources = {f"src/harness/{m}": (HERE / m).read_bytes() for m in PEER_MODULES}
    return pins, {**_files(CONTAINERS / "peer"), **sources}


def _peer_tag(engine: Engine, base: str) -> str:
    pins, files = _peer_inputs()
    return f"mxharness/peer:{_hash([_image_id(engine, base), *pins], files)}"


def _peer_image(engine: Engine, progress: Progress) -> str:
    base = _base_image(engine, PEER_SUITE, progress)
    tag = _peer_tag(engine, base)
    if _exists(engine, tag):
        return tag
    progress(f"building {tag} (fake DNS and SMTP servers)")
    pins, files = _peer_inputs()
    with tempfile.TemporaryDirectory(prefix="mxharness-peer-") as tmp:
        context = Path(tmp)
        for name, data in files.items():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_bytes(data)
        _build_wheels(pins, context / "wheels")
        _build(engine, context, tag, base)
    return tag


@dataclass(frozen=True)
class ImageState:
    """One image the harness needs, and whether the engine has it at the current inputs.

    Attributes:
        role: ``postfix 3.7 (bookworm)``, ``peer`` or ``base bookworm``.
        tag: the tag the current inputs give (None when the base image is missing, so the hash is unknown).
        present: whether that tag exists.
    """

    role: str
    tag: str | None
    present: bool


def image_states(engine: Engine) -> list[ImageState]:
    """What ``mxharness images build`` would find or build, without building anything (for ``doctor``)."""
    states = []
    for suite in sorted({*RELEASES.values(), PEER_SUITE}):
        base = f"mxharness/base:{suite}"
        states.append(ImageState(f"base {suite}", base, _exists(engine, base)))
    for release, suite in RELEASES.items():
        base = f"mxharness/base:{suite}"
        tag = _postfix_tag(engine, suite, base) if _exists(engine, base) else None
        states.append(ImageState(f"postfix {release} ({suite})", tag, tag is not None and _exists(engine, tag)))
    base = f"mxharness/base:{PEER_SUITE}"
    tag = _peer_tag(engine, base) if _exists(engine, base) else None
    states.append(ImageState("peer", tag, tag is not None and _exists(engine, tag)))
    return states


def _base_image(engine: Engine, suite: str, progress: Progress) -> str:
    tag = f"mxharness/base:{suite}"
    if _exists(engine, tag):
        return tag
    try:
        image = engine.client.images.pull("debian", tag=f"{suite}-slim")
        image.tag("mxharness/base", tag=suite)
        return tag
    except docker.errors.DockerException:
        progress(f"no registry reachable: bootstrapping Debian {suite} from the mirror with mmdebstrap (~1 min)")
    _bootstrap(engine, suite, tag)
    return tag


def _bootstrap(engine: Engine, suite: str, tag: str) -> None:
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise EnvironmentProblem(
            f"cannot get a Debian {suite} base image: no registry answers and mmdebstrap is not installed. "
            "Hint: `apt-get install mmdebstrap` (./dev setup does it), or make `docker pull debian:"
            f"{suite}-slim` work"
        )
    with tempfile.TemporaryDirectory(prefix="mxharness-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        result = subprocess.run(
            [tool, "--variant=apt", "--quiet", suite, str(rootfs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.splitlines()[-15:])
            raise EnvironmentProblem(
                f"mmdebstrap could not bootstrap Debian {suite} (exit {result.returncode}):\n{tail}\n"
                "Hint: the Debian mirror must be reachable and mmdebstrap run as root (or with unshare support)"
            )
        repository, _, name = tag.partition(":")
        try:
            engine.client.api.import_image_from_file(str(rootfs), repository=repository, tag=name)
        except docker.errors.DockerException as exc:
            raise EnvironmentProblem(f"docker import of the {suite} root file system failed: {exc}") from None


def _build_wheels(pins: list[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mxharness" / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    links = ["--find-links", str(cache)]
    if os.environ.get("MXHARNESS_WHEELHOUSE"):
        links += ["--find-links", os.environ["MXHARNESS_WHEELHOUSE"]]
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        str(cache),
        *links,
    ]
    result = subprocess.run([*command, *pins], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EnvironmentProblem(
            f"cannot build the peer's wheels ({', '.join(pins)}): {result.stderr.strip()[-800:]}. "
            "Hint: a package index must be reachable, or set MXHARNESS_WHEELHOUSE to a folder holding these wheels"
        )
    wanted = {pin.split("==")[0].replace("-", "_").lower(): pin.split("==")[1] for pin in pins}
    for wheel in cache.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if wanted.get(name.lower()) == version:
            shutil.copy2(wheel, target / wheel.name)


def _build(engine: Engine, context: Path, tag: str, base: str) -> None:
    try:
        engine.client.images.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE": base},
            pull=False,
            rm=True,
            forcerm=True,
            labels={LABEL: "1"},
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        tail = "\n".join(log.strip().splitlines()[-20:])
        raise EnvironmentProblem(f"building {tag} failed: {exc.msg}\n{tail}") from None
    except docker.errors.DockerException as exc:
        raise EnvironmentProblem(f"building {tag} failed: {exc}") from None


def _exists(engine: Engine, tag: str) -> bool:
    try:
        engine.client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_id(engine: Engine, tag: str) -> str:
    return str(engine.client.images.get(tag).id)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hash(extra: list[str], files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:12]
