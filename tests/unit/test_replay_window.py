"""The replay window: offsets every instance computes alike, bounds, whole-or-nothing."""

from __future__ import annotations

from zou_events.messages import Emit
from zou_events.recovery import ReplayWindow
from zou_events.recovery.window import PREDECESSORS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emit(n: int) -> Emit:
    return Emit("task:update", [{"n": n}], "/events", None, (), None, None)


def raw(n: int) -> bytes:
    return b'{"method":"emit","event":"task:update","data":{"n":%d}}' % n


def window(clock: Clock | None = None, messages: int = 1000, size: int = 10**6) -> ReplayWindow:
    return ReplayWindow(120.0, messages, size, clock or Clock())


def fill(target: ReplayWindow, numbers: range) -> list[str]:
    return [target.record(raw(n), emit(n)) for n in numbers]


def test_an_instance_that_started_later_agrees_once_it_read_the_predecessors() -> None:
    early, late = window(), window()
    early_offsets = fill(early, range(12))
    late_offsets = fill(late, range(4, 12))
    assert late_offsets[PREDECESSORS:] == early_offsets[4 + PREDECESSORS :]
    for n in range(PREDECESSORS):  # its predecessors were not all read there
        assert late_offsets[n] != early_offsets[4 + n]


def test_after_returns_what_followed_the_offset_in_order() -> None:
    target = window()
    offsets = fill(target, range(5))
    missed = target.after(offsets[1])
    assert missed is not None
    assert [entry.emit.args[0]["n"] for entry in missed] == [2, 3, 4]
    assert [entry.offset for entry in missed] == offsets[2:]
    assert target.after(offsets[-1]) == []


def test_unknown_offset_gives_nothing() -> None:
    target = window()
    fill(target, range(3))
    assert target.after("AAAAAAAAAAAAAAAA") is None


def test_bounded_in_messages_and_bytes() -> None:
    by_count = window(messages=3)
    offsets = fill(by_count, range(5))
    assert len(by_count) == 3
    assert by_count.after(offsets[1]) is None  # evicted: no partial replay
    assert by_count.after(offsets[2]) is not None
    size = len(raw(0))
    by_bytes = window(size=2 * size)
    fill(by_bytes, range(5))
    assert len(by_bytes) == 2 and by_bytes.bytes == 2 * size


def test_bounded_in_age() -> None:
    clock = Clock()
    target = window(clock)
    first = target.record(raw(0), emit(0))
    clock.now += 60
    second = target.record(raw(1), emit(1))
    assert target.age() == 60
    clock.now += 61  # the first is now 121 s old, over the 120 s window
    assert target.after(first) is None
    assert target.after(second) == []


def test_a_repeated_sequence_is_ambiguous_until_its_older_copy_leaves() -> None:
    same = range(PREDECESSORS + 1)
    target = window(messages=2 * len(same) + 2)
    first = fill(target, same)
    fill(target, range(10, 12))
    second = fill(target, same)
    assert first[-1] == second[-1]  # the same five messages in a row: the same offset
    assert len(set(first[:-1] + second[:-1])) == 2 * PREDECESSORS  # fewer are told apart
    assert target.after(second[-1]) is None  # which one? neither
    fill(target, range(20, 20 + len(same)))  # the first copy has left the window
    missed = target.after(second[-1])
    assert missed is not None
    assert [e.emit.args[0]["n"] for e in missed] == list(range(20, 20 + len(same)))


def test_reset_forgets_the_window_and_the_chain() -> None:
    target = window()
    offsets = fill(target, range(3))
    target.reset()
    assert len(target) == 0 and target.bytes == 0
    assert target.after(offsets[2]) is None
    after_gap = fill(target, range(3, 5))
    assert after_gap[0] not in offsets
