"""A model of the Postfix SMTP client's TLS decision for one delivery attempt, and its explanation in plain words.

Given a scenario, a case and a recipient, the model works out — from the scenario alone, without Docker — what
Postfix 3.7 does on the message's first delivery attempt, with the configuration the pod runs (the harness's, or a
configuration folder's as :func:`harness.postfix.settings_for` neutralises it): the transport and next-hop
(``content_filter``, ``transport_maps``, ``relay_domains``, ``relayhost``, brackets, port), the MX hosts and
addresses, the effective security level and match list and where each came from (main.cf, a policy table entry for
the next-hop or a parent domain, a master.cf ``-o``), the SNI name, the names Postfix checks against the
certificate's names, the chain against the trusted CAs, and so the status, DSN, reason and the level of the ``… TLS
connection established`` line. When the message would not be delivered it
also tries concrete changes and lists those that make it deliver, each with its security trade-off.

The rules live in small modules, each citing the Postfix source and parameters it follows:
:mod:`harness._explain_route` (next-hop, MX), :mod:`harness._explain_policy` (level, match list, policy table),
:mod:`harness._explain_attempt` (STARTTLS, handshake, verification), :mod:`harness._explain_ciphers`
(cipher grades and exclusions against the server's ciphers), :mod:`harness._explain_dane` (DANE per MX
host: DNSSEC, TLSA records, DANE-EE/DANE-TA, release differences), :mod:`harness._explain_names` (OpenSSL's
host check), :mod:`harness._explain_trust` (chain, fingerprints), :mod:`harness._explain_fixes` (what would help),
:mod:`harness._explain_text` (the words). The model is held to real Postfix by a differential test
(``tests/integration/test_explain_differential.py``, docs/explain.md): where they disagree, Postfix is right.

Typical use::

    from harness import load_scenario
    from harness.explain import explain_case

    scenario = load_scenario("scenarios/seed/fastmail.yaml")
    for e in explain_case(scenario, scenario.cases[0]):
        print(e.text())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from harness._explain_attempt import Attempt, attempt
from harness._explain_inputs import CaseInputs, case_inputs
from harness._explain_policy import TlsPolicy, tls_policy
from harness._explain_route import Resolution, Route, resolve, route
from harness._explain_smtp import Outcome
from harness._explain_text import render
from harness._explain_trust import DigestOf
from harness.model import Case, Scenario
from harness.results import Observed

__all__ = [
    "COMPARED",
    "Decision",
    "Disagreement",
    "Explanation",
    "Fix",
    "Prediction",
    "decide",
    "disagreements",
    "explain",
    "explain_case",
]

#: The keys on which the model is held to Postfix.
COMPARED = ("status", "dsn", "tls")


@dataclass(frozen=True)
class Prediction:
    """What the model expects Postfix to log for a recipient's first attempt.

    Attributes:
        status, dsn, tls, reason: as in :class:`harness.results.Observed`; None where the model cannot tell
            (``caveats`` says why; e.g. equal MX preferences tried in random order with different outcomes).
        relays: the host names the ``relay=`` field may name (``("none",)`` when no server is reached).
        certain: False when part of the decision is outside the model (then it is not held to Postfix).
        caveats: what the model is unsure of, in words.
    """

    status: str | None
    dsn: str | None
    tls: str | None
    reason: str | None
    relays: tuple[str, ...] = ()
    certain: bool = True
    caveats: tuple[str, ...] = ()

    def summary(self) -> str:
        """``deferred 4.7.5 tls=Untrusted (Server certificate not verified)``; ``?`` for what is not predicted."""
        text = f"{self.status or '?'} {self.dsn or '?'} tls={self.tls or '?'}"
        return text + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class Decision:
    """The model's reasoning for one recipient: route, policy, hosts, attempts and the prediction; ``via`` is how
    the message entered Postfix (``sendmail``: pickup; ``smtp``: smtpd)."""

    recipient: str
    route: Route
    policy: TlsPolicy | None
    resolution: Resolution
    attempts: tuple[Attempt, ...]
    prediction: Prediction
    via: str = "sendmail"


@dataclass(frozen=True)
class Fix:
    """A change that makes the message deliver, checked with the model.

    Attributes:
        change: what to change, concretely (a policy table line, a main.cf parameter, ``postfix.trust``).
        trade_off: what it gives up, in words.
        after: the model's prediction with the change.
    """

    change: str
    trade_off: str
    after: Prediction


@dataclass(frozen=True)
class Explanation:
    """The model's account of one message of a case.

    Attributes:
        scenario, case, recipient: which message.
        release: the Postfix release modelled.
        decision: the reasoning and prediction.
        fixes: changes that would make a message that is not sent deliver (empty when sent, or none was found).
        fixes_searched: whether changes were looked for.
        folder: the configuration folder the case runs (``postfix.config_dir`` as written), None without one.
    """

    scenario: str
    case: str
    recipient: str
    release: str
    decision: Decision
    fixes: tuple[Fix, ...] = ()
    fixes_searched: bool = False
    folder: str | None = None

    @property
    def prediction(self) -> Prediction:
        """The model's prediction (``decision.prediction``)."""
        return self.decision.prediction

    def text(self, *, indent: str = "") -> str:
        """The explanation in plain words, one fact per line (see docs/explain.md for an example), each line
        prefixed with ``indent``."""
        return "\n".join(indent + line for line in render(self))


@dataclass(frozen=True)
class Disagreement:
    """A key on which the model and real Postfix differ: a bug in the model or a Postfix version difference."""

    key: str
    model: str
    postfix: str


def decide(inputs: CaseInputs, recipient: str, *, digest_of: DigestOf | None = None, via: str = "sendmail") -> Decision:
    """Run the model for ``recipient`` on ``inputs`` (:func:`harness._explain_inputs.case_inputs`), for a message
    sent ``via`` ``sendmail`` (pickup) or ``smtp`` (smtpd; a ``content_filter`` may apply to one and not the other).

    Returns:
        The decision; never raises for a valid scenario (what the model does not cover is a caveat).
    """
    rt = route(inputs, recipient, via)
    resolution = resolve(inputs, rt)

    def decision(policy: TlsPolicy | None, attempts: tuple[Attempt, ...], prediction: Prediction) -> Decision:
        return Decision(recipient, rt, policy, resolution, attempts, prediction, via)

    if inputs.unsupported:
        return decision(None, (), _unknown(inputs.unsupported))
    if rt.unsupported:
        return decision(None, (), _unknown(rt.unsupported))
    if resolution.unsupported:
        return decision(None, (), _unknown(resolution.unsupported))
    if resolution.failure:
        status, dsn, reason = resolution.failure
        return decision(None, (), Prediction(status, dsn, "none", reason, ("none",)))
    policy = tls_policy(inputs, rt)
    if policy.unsupported:
        return decision(policy, (), _unknown(policy.unsupported))
    attempts = tuple(
        attempt(inputs, policy, rt, host, address, recipient, digest_of=digest_of)
        for host in resolution.hosts
        for address in host.addresses
    )
    prediction, tried = _combine(attempts)
    return decision(policy, tried, prediction)


def explain(
    scenario: Scenario,
    case: Case,
    recipient: str,
    *,
    now: datetime | None = None,
    digest_of: DigestOf | None = None,
    fixes: bool = True,
    release: str | None = None,
    via: str | None = None,
) -> Explanation:
    """Explain what Postfix does with a message of ``case`` to ``recipient`` on its first delivery attempt.

    Nothing is raised for a scenario that loaded: what the model does not follow is a caveat of the prediction
    (:attr:`Prediction.certain` False).

    Args:
        now: when certificate validity is judged (default: now).
        digest_of: computes a certificate's digest, for literal ``fingerprint`` digests (default: not compared).
        fixes: look for changes that would make an undelivered message deliver.
        release: the Postfix version to model (``3.7.11``, e.g. the ``mail_version`` a run logged) instead of the
            scenario's ``postfix.release``.
        via: ``sendmail`` or ``smtp`` (default: the ``via`` of the case's first message to ``recipient``).
    """
    inputs = case_inputs(scenario, case, now=now, release=release)
    if via is None:
        via = next((m.via for m in case.send if m.to.lower() == recipient.lower()), "sendmail")
    return _explanation(inputs, recipient, digest_of=digest_of, fixes=fixes, via=via)


def explain_case(
    scenario: Scenario,
    case: Case,
    *,
    now: datetime | None = None,
    digest_of: DigestOf | None = None,
    fixes: bool = True,
    release: str | None = None,
) -> tuple[Explanation, ...]:
    """Explain every message of ``case``, in ``send`` order.

    Messages that share a next-hop and are deferred are not independent in Postfix: after the first failure the
    queue manager may defer the others as ``delivery temporarily suspended`` without a connection, so their TLS
    level is then not predicted. The arguments are those of :func:`explain`.
    """
    inputs = case_inputs(scenario, case, now=now, release=release)
    out = [_explanation(inputs, m.to, digest_of=digest_of, fixes=fixes, via=m.via) for m in case.send]
    destinations = [e.decision.route.destination for e in out]
    for i, e in enumerate(out):
        shared = destinations.count(destinations[i]) > 1
        if shared and e.prediction.status == "deferred":
            note = f"other messages of the case go to {destinations[i]}: Postfix may suspend it after a failure"
            p = replace(e.prediction, tls=None, reason=None, caveats=(*e.prediction.caveats, note))
            out[i] = replace(e, decision=replace(e.decision, prediction=p))
    return tuple(out)


def disagreements(
    prediction: Prediction, observed: Observed, keys: Sequence[str] = COMPARED
) -> tuple[Disagreement, ...]:
    """Where a certain prediction and Postfix's observed first attempt differ, on ``keys`` (default status, DSN and
    TLS level). Fields the model did not predict are not compared; an uncertain prediction is never a disagreement."""
    if not prediction.certain:
        return ()
    out = []
    for key in keys:
        predicted = getattr(prediction, key)
        seen = getattr(observed, key)
        if predicted is not None and predicted != seen:
            out.append(Disagreement(key, predicted, seen))
    return tuple(out)


def _explanation(
    inputs: CaseInputs, recipient: str, *, digest_of: DigestOf | None, fixes: bool, via: str
) -> Explanation:
    decision = decide(inputs, recipient, digest_of=digest_of, via=via)
    found: tuple[Fix, ...] = ()
    searched = fixes and decision.prediction.status not in ("sent", None)
    if searched:
        from harness._explain_fixes import find_fixes

        found = find_fixes(inputs, decision, digest_of=digest_of)
    return Explanation(
        inputs.scenario, inputs.case, recipient, inputs.release, decision, found, searched, inputs.folder
    )


def _unknown(why: str) -> Prediction:
    return Prediction(None, None, None, None, certain=False, caveats=(f"not modelled: {why}",))


def _combine(attempts: Sequence[Attempt]) -> tuple[Prediction, tuple[Attempt, ...]]:
    """The message's fate from its attempts (``smtp_connect.c``), and the attempts Postfix makes: addresses are
    tried in order of MX preference, equal preferences in random order; the first delivery ends it, a 5xx reply
    bounces it, every other failure moves on; when nothing is left the last failure that set a reason is
    reported."""
    caveats = [a.outcome.note for a in attempts if not a.outcome.certain and a.outcome.note]
    certain = all(a.outcome.certain for a in attempts)
    groups: list[list[Attempt]] = []
    for a in attempts:
        if groups and groups[-1][0].host.preference == a.host.preference and a.host.preference is not None:
            groups[-1].append(a)
        elif groups and groups[-1][0].host.name == a.host.name:
            groups[-1].append(a)
        else:
            groups.append([a])
    last: list[Attempt] = []
    for number, group in enumerate(groups):
        tried = tuple(a for g in groups[: number + 1] for a in g)
        sent = [a for a in group if a.outcome.kind == "sent"]
        hard = [a for a in group if a.outcome.kind == "hard"]
        if sent and hard:
            caveats.append("equal MX preference: one host delivers, another bounces; the order is random")
            return _agreeing([*sent, *hard], certain, caveats), tried
        if sent or hard:
            return _agreeing(sent or hard, certain, caveats), tried
        reporting = [a for a in group if a.outcome.kind != "silent"]
        if reporting:
            last = reporting
    everything = tuple(attempts)
    if not last:
        reason = "server unavailable or unable to receive mail"
        return Prediction("deferred", "4.3.0", "none", reason, ("none",), certain, tuple(caveats)), everything
    if len({(a.outcome.status, a.outcome.dsn, a.outcome.tls) for a in last}) > 1:
        caveats.append("equal MX preference: the last host tried, whose failure is reported, is random")
    return _agreeing(last, certain, caveats), everything


def _agreeing(attempts: Sequence[Attempt], certain: bool, caveats: list[str]) -> Prediction:
    """One prediction from the attempts that may end the delivery: a field is predicted where they agree."""

    def one(values: set[str]) -> str | None:
        return next(iter(values)) if len(values) == 1 else None

    outcomes: list[Outcome] = [a.outcome for a in attempts]
    relays = tuple(
        dict.fromkeys(a.host.name if a.outcome.kind in ("sent", "hard", "soft") else "none" for a in attempts)
    )
    return Prediction(
        status=one({o.status for o in outcomes}),
        dsn=one({o.dsn for o in outcomes}),
        tls=one({o.tls for o in outcomes}),
        reason=one({o.reason for o in outcomes}),
        relays=relays,
        certain=certain,
        caveats=tuple(dict.fromkeys(caveats)),
    )
