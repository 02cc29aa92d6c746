"""The harness itself: with no attack, the canary, /health and RSS meet the bounds (so that a
failed attack test is about the attack, not the measurement)."""

from __future__ import annotations

import time

from tests.hostile.support import Instance, attack_window


def test_quiet_window_meets_the_bounds(instance: Instance) -> None:
    with attack_window(instance, "quiet") as window:
        for _ in window.running():
            time.sleep(min(0.5, window.remaining()))  # idle: nothing to wait for
