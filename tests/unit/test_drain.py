"""The drain spreads socket closes over half the graceful timeout."""

from zou_events.drain import MIN_BATCH, drain_batches


def test_small_instances_close_in_one_batch() -> None:
    assert drain_batches(10, 30) == (MIN_BATCH, 0.1)


def test_large_instances_finish_within_half_the_graceful_timeout() -> None:
    size, interval = drain_batches(10_000, 30)
    batches = -(-10_000 // size)
    assert (batches - 1) * interval <= 15
    assert batches > 50  # a ramp, not a storm
