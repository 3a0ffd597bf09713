"""Compare two Postfix configurations over the same world: what a policy change does to the mail of each destination.

Both configurations (:class:`Configuration`: a copy of /etc/postfix, or a policy table) run on real Postfix against
the same worlds and messages (:mod:`harness._compare_plan`), and each message's first delivery attempt before and
after is classified (:func:`classify`): worse (newly bounced, newly deferred, lost verification, weaker TLS), better
(newly verified, newly delivered, stronger TLS), changed otherwise, or unchanged. Each change carries a one-line
reason from the TLS model (:mod:`harness._compare_reason`). ``mxharness compare`` is the command line
(:mod:`harness.cli_compare`, docs/compare.md).

From Python or pytest (the plugin's ``mxharness_runner`` fixture is a :class:`~harness.runner.Runner`)::

    from harness.compare import compare, folder_configuration

    def test_the_new_policy_makes_nothing_worse(mxharness_runner):
        result = compare(folder_configuration("etc-postfix"), folder_configuration("etc-postfix-new"),
                         runner=mxharness_runner)
        assert not result.worse, result.text()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness._compare_config import (
    Configuration,
    folder_configuration,
    opportunistic_configuration,
    policy_configuration,
    policy_domains,
)
from harness._compare_plan import Slot, comparison_scenarios, on_side, select_destinations
from harness._compare_reason import Side, explanations, reason
from harness.explain import Explanation
from harness.model import Scenario
from harness.results import CaseResult, Observed
from harness.runner import Runner
from harness.worlds import library_worlds

__all__ = [
    "BETTER",
    "WORSE",
    "Change",
    "Comparison",
    "Configuration",
    "classify",
    "compare",
    "folder_configuration",
    "opportunistic_configuration",
    "policy_configuration",
    "policy_domains",
]

#: Kinds of change that make the exit code of ``mxharness compare`` 1, in the order reports list them.
WORSE = ("newly bounced", "newly deferred", "lost verification", "weaker TLS", "no result")
#: Kinds of change for the better, in report order.
BETTER = ("newly verified", "newly delivered", "stronger TLS")
#: Every kind, in report order: worse, better, other changes, unchanged.
ORDER = (*WORSE, *BETTER, "changed", "unchanged")

#: The TLS levels of Postfix's "… TLS connection established" line, weakest first ("none": no such line).
_TLS_RANK = {"none": 0, "Anonymous": 1, "Untrusted": 2, "Trusted": 3, "Verified": 4}


@dataclass(frozen=True)
class Change:
    """One message's first delivery attempt before and after.

    Attributes:
        kind: one of :data:`ORDER` (:func:`classify`).
        domain, recipient, via: the message (``via``: ``sendmail`` or ``smtp``).
        world: the world or scenario it comes from; case: the comparison case that sent it.
        before, after: what Postfix logged (None when the case could not finish: ``before_error``/``after_error``).
        reason: the TLS model's one-line reason, for a change (None for unchanged, or when the model has none).
    """

    kind: str
    domain: str
    recipient: str
    via: str
    world: str
    case: str
    before: Observed | None
    after: Observed | None
    before_error: str | None = None
    after_error: str | None = None
    reason: str | None = None

    @property
    def worse(self) -> bool:
        """Whether mail to the destination got worse (:data:`WORSE`)."""
        return self.kind in WORSE

    @property
    def better(self) -> bool:
        """Whether mail to the destination got better (:data:`BETTER`)."""
        return self.kind in BETTER


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`.

    Attributes:
        before, after: the configurations.
        changes: one per message, worse first, then better, other changes and unchanged (:data:`ORDER`).
        before_results, after_results: every case of each side, as ``mxharness run`` reports them.
        notes: what the comparison chose, e.g. policy table keys no world describes.
    """

    before: Configuration
    after: Configuration
    changes: tuple[Change, ...]
    before_results: tuple[CaseResult, ...] = ()
    after_results: tuple[CaseResult, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def worse(self) -> tuple[Change, ...]:
        """The changes for the worse (empty: the change can ship as far as these destinations go)."""
        return tuple(c for c in self.changes if c.worse)

    @property
    def config_issues(self) -> bool:
        """Whether Postfix rejected either configuration (then nothing was sent on that side)."""
        return any(r.config_issues for r in (*self.before_results, *self.after_results))

    def text(self) -> str:
        """The report ``mxharness compare`` prints (:func:`harness._compare_report.report_text`)."""
        from harness._compare_report import report_text

        return report_text(self)


def classify(before: Observed | None, after: Observed | None) -> str:
    """The kind of change between two first delivery attempts of one message.

    Worse: ``newly bounced`` (bounced now, not before), ``newly deferred`` (deferred now, sent before), ``lost
    verification`` (sent both times, Verified only before), ``weaker TLS`` (sent both times, a lower level of the TLS
    line: Verified > Trusted > Untrusted > Anonymous > none), ``no result`` (a side has no outcome). Better:
    ``newly verified`` (sent and Verified now, not before), ``newly delivered`` (sent now, not before), ``stronger
    TLS``. ``changed``: another difference in status or DSN (deferred 4.7.5 → 4.7.4, bounced → deferred).
    ``unchanged``: the same status, DSN and TLS level (the relay may differ: equal MX preferences are tried in
    random order).
    """
    if before is None or after is None:
        return "no result"
    if (before.status, before.dsn, before.tls) == (after.status, after.dsn, after.tls):
        return "unchanged"
    if after.status == "bounced" and before.status != "bounced":
        return "newly bounced"
    if after.status == "deferred" and before.status == "sent":
        return "newly deferred"
    if after.status == "sent" and before.status == "sent":
        if _TLS_RANK.get(after.tls, 0) < _TLS_RANK.get(before.tls, 0):
            return "lost verification" if before.tls == "Verified" else "weaker TLS"
        if _TLS_RANK.get(after.tls, 0) > _TLS_RANK.get(before.tls, 0):
            return "newly verified" if after.tls == "Verified" else "stronger TLS"
        return "changed"
    if after.status == "sent":
        return "newly verified" if after.tls == "Verified" else "newly delivered"
    return "changed"


def compare(
    before: Configuration,
    after: Configuration,
    worlds: Sequence[Scenario] | None = None,
    *,
    runner: Runner,
    explain: bool = True,
) -> Comparison:
    """Run the same worlds and messages with ``before`` and ``after`` on real Postfix and classify each message.

    Args:
        before, after: the configurations (:func:`folder_configuration`, :func:`policy_configuration`,
            :func:`opportunistic_configuration`).
        worlds: scenarios whose world and messages to use: worlds with ``destinations`` send one message to each
            (merged into one scenario), others the distinct messages of their cases. Default: the world library's
            destinations that either side's policy tables name, or the whole library when they name none of them.
        runner: runs the cases (its ``jobs`` decide how many at once; before and after run side by side with 2).
        explain: add the TLS model's reason to each change.

    Returns:
        The comparison; a case that could not finish gives its messages the kind ``no result``.

    Raises:
        ScenarioError: the worlds cannot be combined (two define one entry differently), or the library has
            problems.
        EnvironmentProblem: no Docker engine, or the images cannot be built.
    """
    notes: list[str] = []
    if worlds is None:
        worlds = library_worlds()
        domains, notes = select_destinations((before, after), worlds)
        scenarios, slots = comparison_scenarios(worlds, domains=domains)
    else:
        scenarios, slots = comparison_scenarios(worlds)
    configs = {"before": before, "after": after}
    sides = {side: {s.name: on_side(s, config, side) for s in scenarios} for side, config in configs.items()}
    plan = [sides[side][s.name] for s in scenarios for side in configs]  # before and after of one world together
    results = {(r.scenario, r.case): r for r in runner.run(plan)}
    run = _Run(sides, results, explain=explain)
    changes = sorted((run.change(slot) for slot in slots), key=lambda c: ORDER.index(c.kind))
    by_side = {
        side: tuple(
            results[(s.name, c.name)] for s in sides[side].values() for c in s.cases if (s.name, c.name) in results
        )
        for side in configs
    }
    return Comparison(before, after, tuple(changes), by_side["before"], by_side["after"], tuple(notes))


class _Run:
    """The results of both sides, and the model's explanations of their cases (each case explained once)."""

    def __init__(
        self, sides: dict[str, dict[str, Scenario]], results: dict[tuple[str, str], CaseResult], *, explain: bool
    ) -> None:
        self.sides, self.results, self.explain = sides, results, explain
        self._explained: dict[tuple[str, str], tuple[Explanation | None, ...]] = {}

    def change(self, slot: Slot) -> Change:
        """The change of one message."""
        seen = {side: self._outcome(side, slot) for side in self.sides}
        (observed_b, error_b), (observed_a, error_a) = seen["before"], seen["after"]
        kind = classify(observed_b, observed_a)
        line = None
        if self.explain and kind not in ("unchanged", "no result"):
            line = reason(self._explanation("before", slot), self._explanation("after", slot), (observed_b, observed_a))
        return Change(
            kind,
            slot.domain,
            slot.recipient,
            slot.via,
            slot.world,
            slot.case,
            observed_b,
            observed_a,
            error_b,
            error_a,
            line,
        )

    def _outcome(self, side: str, slot: Slot) -> tuple[Observed | None, str | None]:
        result = self.results.get((self.sides[side][slot.scenario].name, slot.case))
        if result is None:
            return None, "the case did not run"
        r = result.recipients[slot.index]
        if r.observed is not None:
            return r.observed, None
        return None, r.error or result.error or "no status line in Postfix's log"

    def _explanation(self, side: str, slot: Slot) -> Explanation | None:
        scenario = self.sides[side][slot.scenario]
        key = (scenario.name, slot.case)
        if key not in self._explained:
            case = next(c for c in scenario.cases if c.name == slot.case)
            result = self.results.get(key)
            self._explained[key] = explanations(Side(scenario, case, result)) if result else (None,) * len(case.send)
        return self._explained[key][slot.index]
