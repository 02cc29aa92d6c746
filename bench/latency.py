"""Percentiles from the load client's log-bucket latency histogram (1% resolution)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentiles(
    histogram: Iterable[tuple[int, int]], buckets_per_e: int, wanted: Iterable[float]
) -> dict[str, float | None]:
    """Latency in seconds at each wanted percentile, from (bucket, count) pairs.

    Bucket ``i`` holds latencies in [e^(i/b), e^((i+1)/b)) microseconds: a percentile is
    reported as its bucket's geometric middle, within 0.5% of the true value.
    """
    counts = sorted(histogram)
    total = sum(count for _bucket, count in counts)
    result: dict[str, float | None] = {}
    for percentile in wanted:
        key = f"p{percentile:g}"
        if total == 0:
            result[key] = None
            continue
        rank = math.ceil(percentile / 100 * total)
        seen = 0
        for bucket, count in counts:
            seen += count
            if seen >= rank:
                result[key] = math.exp((bucket + 0.5) / buckets_per_e) / 1e6
                break
    return result
