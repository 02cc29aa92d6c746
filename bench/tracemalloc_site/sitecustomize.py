"""Loaded by every interpreter started with this directory on PYTHONPATH (bench/idle_memory.py):
tracemalloc in that process, driven by a real-time signal. The first signal starts tracing
(BENCH_TRACEMALLOC_FRAMES frames), the next ones write a snapshot; tracing from the start
would make the server's start-up take minutes.

gunicorn's worker resets the usual signals (USR1, USR2...), not SIGRTMIN+3; the handler is
inherited through its fork.
"""

import os
import signal
import tracemalloc

SNAPSHOT_SIGNAL = signal.SIGRTMIN + 3
_directory = os.environ.get("BENCH_TRACEMALLOC_DIR")


def _on_signal(_signum: int, _frame: object) -> None:
    assert _directory is not None
    path = os.path.join(_directory, f"{os.getpid()}.snapshot")
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(path + ".part")
    else:
        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "8")))
        open(path + ".part", "wb").close()
    os.rename(path + ".part", path)  # whole or absent for the reader


if _directory:
    signal.signal(SNAPSHOT_SIGNAL, _on_signal)
