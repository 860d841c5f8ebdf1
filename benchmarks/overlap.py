"""`make bench-host`, part two: would the host's work hide behind the model's?

Double buffering (the host preparing the next batch while the model scores this one)
only helps where the model leaves the host's core idle. This measures it: the digits
CNN's forward pass (a full and a 100-row batch) alone, then beside a thread that does
the kind of work a search step does (numpy on small arrays) without pause; and how
much of that work got done meanwhile, as a share of what it does alone. On a CPU where
TensorFlow already keeps every core busy, the model slows by about what the host does,
and overlap gains nothing; on a GPU the host is idle while the device computes.

Writes JSON rows to ``--output`` (untracked by default) and prints them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.cases import digits_case
from benchmarks.run import compiled
from benchmarks.timing import Row
from pixel_threshold.attack import Predict

OUTPUT = Path("benchmarks/output/overlap.json")
CALLS = 200


def host_step(work: np.ndarray) -> None:
    """A stand-in for a search step's numpy work."""
    np.sort(work, axis=1)


def overlap_row(predict: Predict, rows: int) -> Row:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (rows, 8, 8, 1)).astype(np.float32)
    work = rng.random((400, 64))

    def timed_calls() -> list[float]:
        seconds = []
        for _ in range(CALLS):
            start = time.perf_counter()
            predict(batch)
            seconds.append(time.perf_counter() - start)
        return seconds

    start = time.perf_counter()
    for _ in range(CALLS):
        host_step(work)
    step_alone = (time.perf_counter() - start) / CALLS
    alone = timed_calls()
    steps = 0
    running = True

    def host() -> None:
        nonlocal steps
        while running:
            host_step(work)
            steps += 1

    thread = threading.Thread(target=host)
    start = time.perf_counter()
    thread.start()
    beside = timed_calls()
    running = False
    thread.join()
    elapsed = time.perf_counter() - start
    return {
        "rows": rows,
        "model_alone_us": statistics.median(alone) * 1e6,
        "model_beside_host_us": statistics.median(beside) * 1e6,
        "host_work_done_share": steps * step_alone / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    predict = compiled(digits_case(10), 400)
    rows = [overlap_row(predict, count) for count in (100, 400, 100, 400)]
    for row in rows:
        print(
            f"{row['rows']} rows: the model alone {row['model_alone_us']:,.0f} us, beside the "
            f"host's work {row['model_beside_host_us']:,.0f} us; the host did "
            f"{row['host_work_done_share']:.0%} of its work alone meanwhile",
            flush=True,
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
