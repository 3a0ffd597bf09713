"""The exception hierarchy of mxharness, in one place.

Every error the harness raises on purpose is a :class:`HarnessError`. The command line maps the two families
to exit codes: :class:`ScenarioError` (bad input, exit 2) and :class:`EnvironmentProblem` (no engine, image
build failed, exit 3). Messages follow the house form ``<what failed>: <facts>. Hint: <what to do>.``
"""

from __future__ import annotations

__all__ = [
    "CaseTimeout",
    "ConfigRejected",
    "EnvironmentProblem",
    "HarnessError",
    "PodError",
    "ScenarioError",
    "ScenarioIssue",
]

from dataclasses import dataclass


class HarnessError(Exception):
    """Base class of every error mxharness raises on purpose."""


@dataclass(frozen=True)
class ScenarioIssue:
    """One problem found in a scenario file.

    Attributes:
        file: path of the scenario file as given by the user.
        line: 1-based line number of the offending key or value, or None when unknown.
        key: dotted key path, e.g. ``servers.mx1.cert`` or ``cases[0].send[1].expect.dsn``.
        message: what was expected and what was found, with a hint where one helps.
    """

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ScenarioError(HarnessError):
    """A scenario file (or a scenario built in code) is invalid. Carries every issue found, not only the first.

    Attributes:
        issues: the problems, in file order.
    """

    def __init__(self, issues: list[ScenarioIssue] | ScenarioIssue) -> None:
        self.issues = [issues] if isinstance(issues, ScenarioIssue) else list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class EnvironmentProblem(HarnessError):
    """The machine cannot run a pod: no Docker engine reachable, an image build failed, a bootstrap failed."""


class PodError(HarnessError):
    """A pod misbehaved while a case ran: a container died, a command inside it failed.

    Attributes:
        log_tail: the last Postfix log lines and peer events, for the report.
    """

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        self.log_tail = list(log_tail or [])
        super().__init__(message)


class ConfigRejected(PodError):
    """Postfix itself rejected a case's configuration (an unknown parameter name, a bad value).

    Attributes:
        issues: one per problem, with the scenario file, line and key, in Postfix's words.
    """

    def __init__(self, issues: list[ScenarioIssue], log_tail: list[str] | None = None) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues), log_tail)


class CaseTimeout(PodError):
    """A case did not reach a first-attempt status for every recipient within its time limit."""
