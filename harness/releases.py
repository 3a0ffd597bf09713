"""The Postfix releases the harness has images for: release → the Debian suite that ships it.

Kept apart from :mod:`harness.images` (which needs Docker) so that the loader can check ``postfix.release``
without an engine.
"""

from __future__ import annotations

__all__ = ["DEFAULT_RELEASE", "RELEASES", "release_error", "suite_for_release"]

#: Postfix release → Debian suite that ships it.
RELEASES: dict[str, str] = {"3.5": "bullseye", "3.7": "bookworm", "3.10": "trixie"}
DEFAULT_RELEASE = "3.7"


def suite_for_release(release: str | None) -> str | None:
    """The Debian suite for a release (``3.7``) or a suite named directly (``bookworm``); None when unknown."""
    release = release or DEFAULT_RELEASE
    if release in RELEASES:
        return RELEASES[release]
    return release if release in RELEASES.values() else None


def release_error(release: str) -> str:
    """The message for an unknown release."""
    known = ", ".join(f"{r} (Debian {s})" for r, s in RELEASES.items())
    return f"no Postfix image for release {release!r}. Hint: known releases are {known}"
