"""What happened, from the two logs: Postfix's first attempt per recipient and the fake servers' sessions.

Pure functions over the lines a case produced: Postfix's log (read by :class:`~harness.maillog.DeliveryTracker`)
and the peer's JSON events (one per line after Docker's timestamp). Nothing here predicts an outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from harness.maillog import Attempt, DeliveryTracker
from harness.model import Case, Scenario
from harness.results import Observed, RecipientResult, ServerSession, compare

__all__ = ["recipient_results"]

#: Seconds by which Docker's stamp of Postfix's status line may precede the peer's own clock for the session.
_SLACK_S = 0.5


def recipient_results(
    scenario: Scenario,
    case: Case,
    ids: list[str],
    tracker: DeliveryTracker,
    peer_events: Iterable[str],
    error: str | None,
) -> tuple[RecipientResult, ...]:
    """Each message's first attempt as observed, held against its ``expect``.

    Args:
        ids: the Message-ID of each message of ``case.send``, in order.
        tracker: fed with the case's Postfix log.
        peer_events: the case's peer event lines.
        error: why the case ended early, if it did (recipients without a status line get it).
    """
    sessions = _sessions(peer_events)
    attempts = [tracker.first_attempt(mid, m.to) for m, mid in zip(case.send, ids, strict=True)]
    # Sessions are given out in the order Postfix logged the attempts, each session to one attempt at most.
    order = sorted(range(len(attempts)), key=lambda i: _when(attempts[i]))
    claimed: set[int] = set()
    observations: dict[int, Observed] = {}
    for i in order:
        attempt = attempts[i]
        if attempt is not None:
            observations[i] = _observed(attempt, sessions, ids[i], tracker, claimed)
    results = []
    for i, (message, message_id) in enumerate(zip(case.send, ids, strict=True)):
        observed = observations.get(i)
        expect = message.expect_for(tracker.version)  # the values for the release that ran it
        results.append(
            RecipientResult(
                scenario=scenario.name,
                case=case.name,
                recipient=message.to,
                expect=expect,
                observed=observed,
                checks=compare(expect, observed) if observed else (),
                release=tracker.version,
                error=None if observed else (error or "no status line for this recipient"),
                message_id=message_id,
            )
        )
    return tuple(results)


def _events(lines: Iterable[str]) -> Iterator[dict[str, object]]:
    for line in lines:
        _, _, text = line.partition(" ")  # Docker's timestamp
        if text.startswith("{"):
            try:
                event = json.loads(text)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


def _sessions(peer_log: Iterable[str]) -> list[dict[str, object]]:
    """The fake servers' SMTP sessions, built from the per-stage events (so that a session still open, such as
    one Postfix keeps in its connection cache, is seen without waiting for it to close); a closed session's
    summary event, where there is one, completes it."""
    sessions: dict[str, dict[str, object]] = {}
    for e in _events(peer_log):
        sid = str(e.get("session"))
        if e.get("event") == "session":
            sessions[sid] = {**sessions.get(sid, {}), **e}
            continue
        if e.get("event") != "smtp":
            continue
        s = sessions.setdefault(sid, {"server": e.get("server"), "starttls": False, "tls": None, "messages": []})
        stage = e.get("stage")
        if stage == "connect":
            address, _, port = str(e.get("local")).rpartition(":")
            s["local_address"], s["local_port"] = address.strip("[]"), int(port)
            s["connected"] = e.get("t")
            s["client_pid"] = e.get("client_pid")
        elif stage in ("ehlo", "helo"):
            s["ehlo"] = e.get("hostname")
        elif stage == "tls":
            s["tls"] = {k: e.get(k) for k in ("version", "cipher", "sni", "implicit", "client_cert")}
            s["tls_at"] = e.get("t")
        elif stage == "data":
            messages = s["messages"]
            assert isinstance(messages, list)
            messages.append({"message_id": e.get("message_id"), "accepted": e.get("accepted")})
    return list(sessions.values())


def _when(attempt: Attempt | None) -> float:
    """When Postfix logged the attempt's status line (unix time), for ordering; attempts without one last."""
    if attempt is None or attempt.delivery.time is None:
        return float("inf")
    return attempt.delivery.time.timestamp()


def _observed(
    attempt: Attempt, sessions: list[dict[str, object]], message_id: str, tracker: DeliveryTracker, claimed: set[int]
) -> Observed:
    d = attempt.delivery
    received = any(
        m.get("message_id") == message_id and m.get("accepted") for s in sessions for m in _list(s.get("messages"))
    )
    # The moment to match the fake server's session by: Postfix's TLS line of the attempt, else its status line.
    moment = attempt.tls.time.timestamp() if attempt.tls and attempt.tls.time else _when(attempt)
    server = _server_session(sessions, d.relay_address, d.relay_port, d.pid, message_id, moment, claimed)
    return Observed(
        status=d.status,
        dsn=d.dsn,
        reason=d.reason,
        relay=d.relay,
        relay_host=d.relay_host,
        relay_address=d.relay_address,
        relay_port=d.relay_port,
        tls=attempt.tls_level,
        queue_id=d.queue_id,
        tls_protocol=attempt.tls.protocol if attempt.tls else None,
        tls_cipher=attempt.tls.cipher if attempt.tls else None,
        received=received,
        server=server,
        log_lines=tuple(tracker.lines_for(d.queue_id)),
    )


def _server_session(
    sessions: list[dict[str, object]],
    address: str | None,
    port: int | None,
    pid: int | None,
    message_id: str,
    moment: float,
    claimed: set[int],
) -> ServerSession | None:
    """The fake server's session of this attempt: the one that took the message; else, at the relay's address
    and port, a session not given to another attempt and opened by the attempt's smtp(8) process (``pid``, as
    the peer read it from /proc), the one whose TLS handshake (or, without one, its start) is nearest in time to
    ``moment``. Without such a session, by time alone among those whose opener is unknown, then among all (the
    connection cache hands a connection to another process). The pid comes first because parallel smtp(8)
    processes may connect within the same millisecond.

    ``starttls`` is true when the STARTTLS handshake completed (a TLS event without implicit TLS), not merely
    when the server answered 220 to STARTTLS. ``client_cert`` is true when Postfix presented a certificate in the
    handshake (STARTTLS or implicit TLS).
    """
    at_relay = [
        (i, s) for i, s in enumerate(sessions) if s.get("local_address") == address and s.get("local_port") == port
    ]
    took = [(i, s) for i, s in at_relay if any(m.get("message_id") == message_id for m in _list(s.get("messages")))]
    unclaimed = [(i, s) for i, s in at_relay if i not in claimed and _started(s) <= moment + _SLACK_S]
    by_this_process = [(i, s) for i, s in unclaimed if pid is not None and s.get("client_pid") == pid]
    opener_unknown = [(i, s) for i, s in unclaimed if s.get("client_pid") is None]
    # The last resort, any unclaimed session: a connection cache hands one process's connection to another.
    free = sorted(
        by_this_process or opener_unknown or unclaimed, key=lambda pair: abs(_handshake_or_start(pair[1]) - moment)
    )
    chosen = took[-1:] or free[:1]
    if not chosen:
        return None
    index, s = chosen[0]
    claimed.add(index)
    tls = s.get("tls") if isinstance(s.get("tls"), dict) else {}
    assert isinstance(tls, dict)
    return ServerSession(
        server=str(s.get("server")),
        address=str(address),
        port=int(port or 0),
        starttls=bool(tls) and not tls.get("implicit"),
        tls_version=tls.get("version"),
        cipher=tls.get("cipher"),
        sni=tls.get("sni"),
        client_cert=tls.get("client_cert") is True,
        ehlo=str(s["ehlo"]) if isinstance(s.get("ehlo"), str) else None,
        received=bool(took),
    )


def _started(session: dict[str, object]) -> float:
    """Unix time the session began: its ``connect`` event, else the summary's ``start``."""
    value = session.get("connected", session.get("start"))
    return float(value) if isinstance(value, int | float) else 0.0


def _handshake_or_start(session: dict[str, object]) -> float:
    value = session.get("tls_at")
    return float(value) if isinstance(value, int | float) else _started(session)


def _list(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
