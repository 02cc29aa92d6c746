"""The replay window: offsets every instance computes alike, bounds, whole-or-nothing."""

from __future__ import annotations

from zou_events.messages import Emit
from zou_events.recovery import ReplayWindow


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


def test_an_instance_that_started_later_agrees_from_its_second_message() -> None:
    early, late = window(), window()
    early_offsets = fill(early, range(10))
    late_offsets = fill(late, range(6, 10))
    assert late_offsets[1:] == early_offsets[7:]
    assert late_offsets[0] != early_offsets[6]  # its predecessor was not read there


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


def test_a_repeated_pair_is_ambiguous_until_its_older_copy_leaves() -> None:
    target = window(messages=4)
    a, b = raw(1), raw(2)
    first = [target.record(a, emit(1)), target.record(b, emit(2))]
    second = [target.record(a, emit(1)), target.record(b, emit(2))]
    assert first[1] == second[1]  # the same two messages in a row: the same offset
    assert target.after(second[1]) is None  # which one? neither
    target.record(raw(3), emit(3))
    target.record(raw(4), emit(4))  # the first copy of the pair has left the window
    missed = target.after(second[1])
    assert missed is not None and [e.emit.args[0]["n"] for e in missed] == [3, 4]


def test_reset_forgets_the_window_and_the_chain() -> None:
    target = window()
    offsets = fill(target, range(3))
    target.reset()
    assert len(target) == 0 and target.bytes == 0
    assert target.after(offsets[2]) is None
    after_gap = fill(target, range(3, 5))
    assert after_gap[0] not in offsets
