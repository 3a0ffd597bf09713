"""Fixtures for tests/. The CI rule (a skipped docker test, or none run, fails the session when ``CI`` is set)
lives in the root conftest.py, which also covers the scenario cases of scenarios/."""

from __future__ import annotations

pytest_plugins = ["pytester"]
