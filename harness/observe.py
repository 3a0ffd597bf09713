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
    results = []
    for message, message_id in zip(case.send, ids, strict=True):
        attempt = tracker.first_attempt(message_id, message.to)
        observed = _observed(attempt, sessions, message_id, tracker) if attempt else None
        results.append(
            RecipientResult(
                scenario=scenario.name,
                case=case.name,
                recipient=message.to,
                expect=message.expect,
                observed=observed,
                checks=compare(message.expect, observed) if observed else (),
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
        elif stage in ("ehlo", "helo"):
            s["ehlo"] = e.get("hostname")
        elif stage == "starttls" and str(e.get("reply", "")).startswith("2"):
            s["starttls"] = True
        elif stage == "tls":
            s["tls"] = {k: e.get(k) for k in ("version", "cipher", "sni", "implicit", "client_cert")}
        elif stage == "data":
            messages = s["messages"]
            assert isinstance(messages, list)
            messages.append({"message_id": e.get("message_id"), "accepted": e.get("accepted")})
    return list(sessions.values())


def _observed(
    attempt: Attempt, sessions: list[dict[str, object]], message_id: str, tracker: DeliveryTracker
) -> Observed:
    d = attempt.delivery
    received = any(
        m.get("message_id") == message_id and m.get("accepted") for s in sessions for m in _list(s.get("messages"))
    )
    server = _server_session(sessions, d.relay_address, d.relay_port, message_id)
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
    sessions: list[dict[str, object]], address: str | None, port: int | None, message_id: str
) -> ServerSession | None:
    """The fake server's session with the relay: the one that took this message, else the last one there."""
    at_relay = [s for s in sessions if s.get("local_address") == address and s.get("local_port") == port]
    if not at_relay:
        return None
    took = [s for s in at_relay if any(m.get("message_id") == message_id for m in _list(s.get("messages")))]
    s = (took or at_relay)[-1]
    tls = s.get("tls") if isinstance(s.get("tls"), dict) else {}
    assert isinstance(tls, dict)
    return ServerSession(
        server=str(s.get("server")),
        address=str(address),
        port=int(port or 0),
        starttls=bool(s.get("starttls")),
        tls_version=tls.get("version"),
        cipher=tls.get("cipher"),
        sni=tls.get("sni"),
        ehlo=str(s["ehlo"]) if isinstance(s.get("ehlo"), str) else None,
        received=bool(took),
    )


def _list(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
