"""Recovery's decisions, with its suspended sessions on the suite's real Redis: who gets a
pid, and what a pid restores (the token itself is checked before, as at any connection)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.support import suite_redis
from zou_events.auth import Identity
from zou_events.messages import Emit
from zou_events.recovery import Recovery, RedisSuspendedSessions, ReplayWindow, Suspended

ALICE, BOB = "person-alice", "person-bob"


def identity(person_id: str, source: str = "cookie") -> Identity:
    return Identity(person_id, uuid.uuid4().hex, "person", None, source, "not-a-token")


def outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("zou_events_recoveries_total", {"outcome": outcome}) or 0.0


class Clock:
    """A window's clock, from ``offset`` seconds away from now."""

    def __init__(self, offset: float = 0.0) -> None:
        self.now = time.time() + offset

    def __call__(self) -> float:
        return self.now


class Instance:
    """One instance's recovery, all instances sharing the suspended sessions."""

    def __init__(self, prefix: str, messages: int = 1000, clock: Clock | None = None) -> None:
        client = suite_redis.client(suite_redis.EVENTS_DB, decode_responses=True)
        self.suspended = RedisSuspendedSessions(client, prefix)
        self.clock = clock or Clock()
        window = ReplayWindow(120.0, messages, 10**6, self.clock)
        self.recovery = Recovery(window, self.suspended)
        self.sids = 0

    def publish(self, n: int) -> str | None:
        emit = Emit("task:update", [{"n": n}], "/events", None, (), None, None)
        return self.recovery.record(b'{"n":%d}' % n, emit)

    def connect(self, who: Identity, auth: Any = None) -> tuple[dict[str, Any], list[Any]]:
        self.sids += 1
        sid = f"sid-{self.sids}"
        self.recovery.claim(sid, who, auth)
        answer = {"sid": sid}
        return answer, self.recovery.connect_answer(f"eio-{sid}", answer)


@pytest.fixture
def prefix() -> str:
    return f"test-recovery-{uuid.uuid4().hex}:"


def test_only_cookie_sockets_get_a_pid_and_offsets(prefix: str) -> None:
    instance = Instance(prefix)
    browser, replay = instance.connect(identity(ALICE))
    assert set(browser) == {"sid", "pid"} and len(browser["pid"]) >= 22 and replay == []
    assert instance.recovery.offset_sockets == {"eio-sid-1"}
    for source in ("header", "auth"):
        answer, _ = instance.connect(identity(ALICE, source), {"token": "x"})
        assert answer == {"sid": answer["sid"]}  # byte-identical to today's answer
    assert instance.recovery.offset_sockets == {"eio-sid-1"}
    assert instance.publish(1) is not None
    room = Emit("preview-room:room-updated", [{}], "/events", "room", (), None, None)
    assert instance.recovery.record(b"{}", room) is None  # rooms are not replayed


def test_recovered_on_another_instance_once(prefix: str) -> None:
    left, other = Instance(prefix), Instance(prefix)
    offsets = [(left.publish(n), other.publish(n)) for n in range(3)]
    answer, _ = left.connect(identity(ALICE))
    left.recovery.disconnected(answer["sid"], "server_shutdown")
    assert left.recovery.offset_sockets == set()
    missed = [(left.publish(n), other.publish(n)) for n in range(3, 6)]
    auth = {"pid": answer["pid"], "offset": offsets[2][0]}
    before = outcomes("recovered")
    back, replay = other.connect(identity(ALICE), auth)
    assert back["pid"] == answer["pid"]  # socket.recovered === true
    assert replay == [
        ["task:update", {"n": n}, offset]
        for n, (offset, _) in zip(range(3, 6), missed, strict=True)
    ]
    assert outcomes("recovered") == before + 1
    again, replay = other.connect(identity(ALICE), auth)  # the same pid a second time
    assert again["pid"] != answer["pid"] and replay == []


def test_another_persons_pid_restores_nothing_and_is_spent(prefix: str) -> None:
    instance = Instance(prefix)
    offset = instance.publish(1)
    answer, _ = instance.connect(identity(ALICE))
    instance.recovery.disconnected(answer["sid"], "transport")
    instance.publish(2)
    before = outcomes("refused")
    stolen, replay = instance.connect(identity(BOB), {"pid": answer["pid"], "offset": offset})
    assert stolen["pid"] != answer["pid"] and replay == []
    assert outcomes("refused") == before + 1
    owner, replay = instance.connect(identity(ALICE), {"pid": answer["pid"], "offset": offset})
    assert owner["pid"] != answer["pid"] and replay == []


def test_unknown_expired_and_final_disconnections(prefix: str) -> None:
    instance = Instance(prefix, messages=2)
    offset = instance.publish(1)
    answer, _ = instance.connect(identity(ALICE))
    instance.recovery.disconnected(answer["sid"], "client")  # socket.disconnect(): final
    unknown = outcomes("unknown_pid")
    fresh, _ = instance.connect(identity(ALICE), {"pid": answer["pid"], "offset": offset})
    assert fresh["pid"] != answer["pid"] and outcomes("unknown_pid") == unknown + 1
    instance.recovery.disconnected(fresh["sid"], "ping_timeout")
    for n in range(2, 5):  # the buffer holds 2: the client's offset is gone
        instance.publish(n)
    expired = outcomes("expired")
    late, replay = instance.connect(identity(ALICE), {"pid": fresh["pid"], "offset": offset})
    assert late["pid"] != fresh["pid"] and replay == [] and outcomes("expired") == expired + 1
    old = Suspended(ALICE, time.time() - 121)  # suspended longer than the window
    instance.suspended.put("a-pid-of-long-ago", old, 240)
    latest = instance.publish(5)
    auth = {"pid": "a-pid-of-long-ago", "offset": latest}
    too_late, replay = instance.connect(identity(ALICE), auth)
    assert too_late["pid"] != "a-pid-of-long-ago" and replay == []
    assert outcomes("expired") == expired + 2


@pytest.mark.parametrize(
    "auth",
    [
        {"pid": 5, "offset": "x"},
        {"pid": "a" * 65, "offset": "x"},
        {"pid": "../x", "offset": "y"},
        ["pid"],
        "pid",
    ],
)
def test_malformed_recovery_fields_are_a_fresh_connection(prefix: str, auth: Any) -> None:
    answer, replay = Instance(prefix).connect(identity(ALICE), auth)
    assert "pid" in answer and replay == []


def test_a_quiet_gap_is_recovered_after_the_last_event_aged_out(prefix: str) -> None:
    clock = Clock()
    instance = Instance(prefix, clock=clock)
    offset = instance.publish(1)
    answer, _ = instance.connect(identity(ALICE))
    instance.recovery.disconnected(answer["sid"], "transport")
    clock.now += 121  # the window is empty: nothing was published since
    back, replay = instance.connect(identity(ALICE), {"pid": answer["pid"], "offset": offset})
    assert back["pid"] == answer["pid"] and replay == []


def test_an_instance_started_after_the_last_event_replays_all_it_read(prefix: str) -> None:
    old = Instance(prefix, clock=Clock(-60))
    offset = old.publish(1)  # read a minute ago, the last one before the disconnection
    tabs = [old.connect(identity(ALICE))[0] for _ in range(2)]
    started = Instance(prefix, clock=Clock(-30))  # started since, complete since then
    late = Instance(prefix, clock=Clock(-2))  # started just before the disconnection
    for tab in tabs:
        old.recovery.disconnected(tab["sid"], "server_shutdown")
    for instance in (started, late):
        instance.clock.now = time.time()
        instance.publish(2)
    back, replay = started.connect(identity(ALICE), {"pid": tabs[0]["pid"], "offset": offset})
    assert back["pid"] == tabs[0]["pid"]
    assert [args[1] for args in replay] == [{"n": 2}]
    # Started 2 s before the disconnection: it may lack what was published as it subscribed.
    expired = outcomes("expired")
    again, replay = late.connect(identity(ALICE), {"pid": tabs[1]["pid"], "offset": offset})
    assert again["pid"] != tabs[1]["pid"] and replay == []
    assert outcomes("expired") == expired + 1


def test_an_instance_started_just_before_the_last_event_finds_it_by_its_bytes(
    prefix: str,
) -> None:
    old = Instance(prefix)
    for n in range(3):
        old.publish(n)
    tabs = [old.connect(identity(ALICE))[0] for _ in range(2)]
    started = Instance(prefix)  # its first messages have offsets of their own
    offset = old.publish(3)
    assert started.publish(3) != offset
    for tab in tabs:
        old.recovery.disconnected(tab["sid"], "server_shutdown")
    started.publish(4)
    back, replay = started.connect(identity(ALICE), {"pid": tabs[0]["pid"], "offset": offset})
    assert back["pid"] == tabs[0]["pid"]
    assert [args[1] for args in replay] == [{"n": 4}]
    started.publish(3)  # the same bytes again, moments later: which one did the client have?
    again, replay = started.connect(identity(ALICE), {"pid": tabs[1]["pid"], "offset": offset})
    assert again["pid"] != tabs[1]["pid"] and replay == []
