"""When a case's fake-server events are complete (harness.casepod._wait_sessions_closed), on a fake clock."""

from __future__ import annotations

import pytest

from harness import casepod

CONNECT = '2026-11-30T10:00:00.000Z {"event": "smtp", "stage": "connect", "session": "%s", "server": "mx"}'
TLS = '2026-11-30T10:00:00.001Z {"event": "smtp", "stage": "tls", "session": "%s", "sni": null}'
SUMMARY = '2026-11-30T10:00:00.002Z {"event": "session", "session": "%s", "server": "mx", "starttls": true}'


class Clock:
    """time.monotonic and time.sleep of casepod, on a clock that moves only when slept on; ``arrivals`` are
    (time, line) pairs that appear in the log at that time."""

    def __init__(self, arrivals: list[tuple[float, str]]) -> None:
        self.now = 0.0
        self.arrivals = arrivals

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def snapshot(self) -> list[str]:
        return ["ready"] + [line for at, line in self.arrivals if at <= self.now]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock([])
    monkeypatch.setattr(casepod.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(casepod.time, "sleep", fake.sleep)
    return fake


def test_every_session_closed_ends_the_wait_at_once(clock: Clock) -> None:
    # The caller has seen the peer's mark: nothing written before it is still on its way.
    clock.arrivals = [(0.0, CONNECT % "a"), (0.0, TLS % "a"), (0.0, SUMMARY % "a")]
    casepod._wait_sessions_closed(clock.snapshot, 1, limit_s=2.0)
    assert clock.now == 0.0


def test_no_session_at_all_ends_the_wait_at_once(clock: Clock) -> None:
    # e.g. every recipient deferred before a connection (NXDOMAIN, connection refused)
    casepod._wait_sessions_closed(clock.snapshot, 1, limit_s=2.0)
    assert clock.now == 0.0


def test_a_session_still_open_waits_for_quiet(clock: Clock) -> None:
    # Postfix's connection cache keeps session b open: its late events must still be read.
    clock.arrivals = [(0.0, CONNECT % "a"), (0.0, SUMMARY % "a"), (0.0, CONNECT % "b"), (0.05, TLS % "b")]
    casepod._wait_sessions_closed(clock.snapshot, 1, limit_s=2.0)
    assert clock.now >= 0.05 + casepod.QUIET_S


def test_a_summary_arriving_late_is_waited_for(clock: Clock) -> None:
    clock.arrivals = [(0.0, CONNECT % "a"), (0.0, CONNECT % "b"), (0.0, SUMMARY % "a"), (0.08, SUMMARY % "b")]
    casepod._wait_sessions_closed(clock.snapshot, 1, limit_s=2.0)
    assert 0.08 <= clock.now < 0.09


def test_lines_before_the_case_do_not_count(clock: Clock) -> None:
    # A session of the case before (line 0, before `start`) never closes in this case's lines.
    casepod._wait_sessions_closed(lambda: [CONNECT % "old", *clock.snapshot()[1:]], 1, limit_s=2.0)
    assert clock.now == 0.0


def test_the_limit_holds_for_a_busy_open_session(clock: Clock) -> None:
    # An open session whose stream never goes quiet ends at the limit.
    clock.arrivals = [(0.0, CONNECT % "b"), *((i * 0.01, TLS % "b") for i in range(1000))]
    casepod._wait_sessions_closed(clock.snapshot, 1, limit_s=0.5)
    assert 0.5 <= clock.now < 0.52


def test_the_session_id_is_read_from_its_field() -> None:
    assert casepod._session_id(SUMMARY % "f788532dc9dc", '"event": "session"') == "f788532dc9dc"
    assert casepod._session_id(CONNECT % "abc", '"event": "session"') is None
