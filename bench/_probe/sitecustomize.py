"""Loaded into a benchmark's server process by bench/idle.py --trace (through
PYTHONPATH), never into a real one. Each SIGUSR2 writes a tracemalloc
snapshot to $BENCH_SNAPSHOT.<n> and then creates $BENCH_SNAPSHOT.<n>.done;
the first also starts tracing (from then on, so that starting the server
and registering its users run at full speed): what later snapshots hold
beyond the first is what was allocated since, and is still held."""

import gc
import itertools
import os
import signal
import tracemalloc

_numbers = itertools.count(1)


def _snapshot(_signum: int, _frame: object) -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(os.environ.get("BENCH_TRACE_FRAMES", "1")))
    path = f"{os.environ['BENCH_SNAPSHOT']}.{next(_numbers)}"
    gc.collect()
    tracemalloc.take_snapshot().dump(path)
    open(path + ".done", "w").close()  # noqa: SIM115 (a marker, empty)


if os.environ.get("BENCH_SNAPSHOT"):
    signal.signal(signal.SIGUSR2, _snapshot)
