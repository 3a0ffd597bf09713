"""The progress display of ``mxharness run``: which case is running, how many of how many are done.

In a terminal it is a live line (rich's Progress: spinner, ``scenario/case``, bar, done/total, elapsed) that
disappears at the end; every finished case also leaves one ``pass``/``FAIL`` line above it. When the output is
not a terminal (CI logs, a file), when ``TERM=dumb`` or when ``NO_COLOR`` is set, there is no live display and no
colour: only the finished-case lines, numbered ``[3/9]``. When a run has more than one Postfix release
(``--release all``), every line names the release of its case.
"""

from __future__ import annotations

__all__ = ["RunProgress", "live_display"]

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.results import CaseResult


def live_display(console: Console) -> bool:
    """Whether a live (redrawn) display suits this console: a real terminal, not ``dumb``, no ``NO_COLOR``."""
    return console.is_terminal and not console.is_dumb_terminal and not console.no_color


class RunProgress:
    """Progress of a run of ``total`` cases on ``console``.

    Use as a context manager (or :meth:`start` / :meth:`stop`); call :meth:`running` when a case starts and
    :meth:`done` when it has finished; :meth:`note` prints a message (image builds) above the live line.

    Args:
        console: where to write.
        total: number of cases the run will run.
        show_release: name the Postfix release of each case (a run on more than one release).
    """

    def __init__(self, console: Console, total: int, *, show_release: bool = False) -> None:
        self.console = console
        self.total = total
        self.show_release = show_release
        self.finished = 0
        self.live = live_display(console)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self.live,
        )
        self._task = self._progress.add_task("starting", total=total)

    def start(self) -> None:
        """Show the live line (nothing when :attr:`live` is False)."""
        self._progress.start()

    def stop(self) -> None:
        """Remove the live line. Idempotent."""
        self._progress.stop()

    def __enter__(self) -> RunProgress:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def running(self, scenario: str, case: str, release: str | None = None) -> None:
        """A case starts: show ``scenario/case`` (``… on Postfix 3.10`` with :attr:`show_release`) in the live line."""
        self._progress.update(self._task, description=f"{scenario}/{case}{self._on(release)}")

    def done(self, result: CaseResult) -> None:
        """A case has finished: print ``pass scenario/case (3.1 s) [n/total]`` (``pass scenario/case on Postfix 3.5.25
        (3.1 s) [n/total]`` with :attr:`show_release`) and advance the bar."""
        self.finished += 1
        line = Text("pass", style="green") if result.passed else Text("FAIL", style="bold red")
        line.append(f" {result.scenario}/{result.case}{self._on(result.release)} ({result.duration_s:.1f} s)")
        line.append(f" [{self.finished}/{self.total}]")
        self.console.print(line)
        self._progress.advance(self._task)

    def _on(self, release: str | None) -> str:
        return f" on Postfix {release or '?'}" if self.show_release else ""

    def note(self, message: str) -> None:
        """Print a message of the runner (image builds) in dim type."""
        self.console.print(Text(message, style="dim"))
