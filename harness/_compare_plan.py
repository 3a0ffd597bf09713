"""What a comparison runs: the worlds and messages, as scenarios without a configuration of their own.

A world with ``destinations`` (the world library, :mod:`harness.worlds`) contributes one message to each destination
it describes; the worlds chosen are merged into one scenario (one case per side, one pod each). Any other scenario
contributes the distinct messages (``to``, ``from``, ``via``) of its cases: those of the cases that keep the
scenario's world in one case, and each case that changes the world (``dns``, ``servers``, ``pki.certs``) as a case
of its own. ``expect`` and every ``postfix`` key but ``release``, ``hostname`` and ``trust`` are dropped: the
configuration under comparison is the only one. :func:`on_side` then gives a scenario the configuration of one side.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from harness._compare_config import Configuration, policy_domains
from harness.model import Case, Message, PostfixSpec, Scenario
from harness.worlds import destinations_of, merged_worlds

__all__ = ["Slot", "comparison_scenarios", "on_side", "select_destinations"]

_NAME_MAX = 63  # a scenario name is a DNS label in the Message-ID


@dataclass(frozen=True)
class Slot:
    """One message of a comparison: where it is in the comparison scenarios, and what it is.

    Attributes:
        scenario, case, index: the comparison scenario, its case and the message's place in ``send``.
        world: the world (scenario name) the destination comes from.
        domain: the recipient domain; recipient and via: the message.
    """

    scenario: str
    case: str
    index: int
    world: str
    domain: str
    recipient: str
    via: str


def select_destinations(configs: Iterable[Configuration], worlds: Sequence[Scenario]) -> tuple[set[str], list[str]]:
    """The destinations of ``worlds`` that the configurations' policy tables name (a key equal to the domain, or a
    ``.parent`` key above it), and notes: keys no world describes, and that every destination is taken when the
    tables name none of them."""
    named = list(dict.fromkeys(key for c in configs for key in policy_domains(c)))
    known = [d.domain for w in worlds for d in destinations_of(w)]
    chosen = {domain for domain in known if any(_covers(key, domain) for key in named)}
    notes = []
    unknown = [key for key in named if not any(_covers(key, domain) for domain in known)]
    if unknown:
        notes.append(
            f"named by a policy table but described by no world of the library: {', '.join(unknown)} "
            "(give a world that describes them as WORLD)"
        )
    if not chosen:
        notes.append(
            "the policy tables name no destination of the library: every destination of the library is compared"
        )
        chosen = set(known)
    return chosen, notes


def comparison_scenarios(
    worlds: Sequence[Scenario], *, domains: set[str] | None = None
) -> tuple[list[Scenario], list[Slot]]:
    """The scenarios a comparison runs on each side (without a configuration yet) and the messages they hold.

    Args:
        worlds: worlds with destinations (merged into one scenario) and other scenarios (one each).
        domains: only these destinations of the worlds with destinations (default: all of them).

    Raises:
        ScenarioError: two worlds define one entry differently.
    """
    out: list[Scenario] = []
    slots: list[Slot] = []
    chosen = [d for w in worlds for d in destinations_of(w) if domains is None or d.domain in domains]
    libraries = [w for w in worlds if any(d.world == w.name for d in chosen)]  # the others' certificates not made
    if chosen:
        pki, dns, servers = merged_worlds(libraries)
        taken = {w.name for w in worlds}
        name = libraries[0].name if len(libraries) == 1 else next(n for n in _names("library") if n not in taken)
        send = [Message(to=d.recipient) for d in chosen]
        out.append(Scenario(name=name, pki=pki, dns=dns, servers=servers, cases=[Case(name="compare", send=send)]))
        slots += [Slot(name, "compare", i, d.world, d.domain, d.recipient, "sendmail") for i, d in enumerate(chosen)]
    for scenario in (w for w in worlds if not w.destinations):
        stripped = _stripped(scenario)
        out.append(stripped)
        slots += [
            Slot(stripped.name, case.name, i, scenario.name, m.to.rpartition("@")[2].lower(), m.to, m.via)
            for case in stripped.cases
            for i, m in enumerate(case.send)
        ]
    return out, slots


def on_side(scenario: Scenario, config: Configuration, side: str) -> Scenario:
    """``scenario`` with ``config`` as its Postfix (its ``release``, ``hostname`` and ``trust`` kept) and a name
    that says the side (``library-before``)."""
    own = scenario.postfix
    postfix = config.postfix.model_copy(
        update={"release": own.release, "hostname": own.hostname or config.postfix.hostname, "trust": own.trust}
    )
    name = f"{scenario.name[: _NAME_MAX - len(side) - 1]}-{side}"
    return scenario.model_copy(update={"name": name, "postfix": postfix})


def _stripped(scenario: Scenario) -> Scenario:
    """A scenario's world and distinct messages without expectations or Postfix settings (module docstring)."""
    plain = _distinct(m for c in scenario.cases if not c.changes_world for m in c.send)
    cases = [Case(name="compare", send=plain)] if plain else []
    cases += [
        c.model_copy(update={"postfix": PostfixSpec(), "send": _distinct(c.send)})
        for c in scenario.cases
        if c.changes_world
    ]
    postfix = PostfixSpec(
        release=scenario.postfix.release, hostname=scenario.postfix.hostname, trust=scenario.postfix.trust
    )
    return scenario.model_copy(update={"postfix": postfix, "cases": cases})


def _distinct(messages: Iterable[Message]) -> list[Message]:
    """Each (to, from, via) once, without ``expect``."""
    seen: dict[tuple[str, str, str], Message] = {}
    for m in messages:
        key = (m.to.lower(), m.from_.lower(), m.via)
        if key not in seen:  # a new message: no expect, also none per release
            seen[key] = Message.model_validate(m.model_dump(by_alias=True, exclude={"expect"}))
    return list(seen.values())


def _names(base: str) -> Iterator[str]:
    """``base``, ``base-2``, ``base-3`` …: a name for the merged worlds that no scenario of the comparison has."""
    yield base
    yield from (f"{base}-{n}" for n in itertools.count(2))


def _covers(key: str, domain: str) -> bool:
    """Whether a policy table key applies to mail for ``domain``: the domain itself or a ``.parent`` above it."""
    return key == domain or (key.startswith(".") and domain.endswith(key))
