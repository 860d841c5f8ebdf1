"""`make bench-host` (second part): why host work costs more inside an attack than timed
alone, and what it costs the model.

Two measurements on the digits CNN's compiled forward pass (batch 400), interleaved in
rounds so that the machine's drift falls on every condition alike:

1. **Host work after a forward pass.** Each numpy workload (a CMA-ES generation's 25,600
   normal draws, a 64 x 64 eigendecomposition and Cholesky factorisation, twenty small
   indexing calls of the kind a random-search step makes) is timed alone, repeated
   back to back, and right after a forward pass, as the attack runs it.
2. **The forward pass after the host.** The forward pass is timed back to back, after
   an idle wait (a spin on the clock, touching nothing) as long as the normal draws
   take alone, and after the draws.

Writes JSON rows to ``--output`` (untracked by default) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.cases import digits_case
from benchmarks.run import compiled
from benchmarks.timing import Row

OUTPUT = Path("benchmarks/output/cold_host.json")


def workloads() -> dict[str, Callable[[], object]]:
    """Host work of the attack's kinds, by name."""
    rng = np.random.default_rng(0)
    normals = np.empty((400, 64))
    factor = rng.standard_normal((64, 64))
    covariance = (factor @ factor.T + np.eye(64))[None]
    small = rng.random((100, 10))

    def indexing() -> None:
        for _ in range(20):
            rows = small[:, 0] > 0.5
            small[rows].argmax(axis=1)

    return {
        "25,600 normal draws": lambda: rng.standard_normal(out=normals),
        "64 x 64 eigendecomposition": lambda: np.linalg.eigh(covariance),
        "64 x 64 Cholesky factorisation": lambda: np.linalg.cholesky(covariance),
        "20 small indexing calls": indexing,
    }


def spin(seconds: float) -> None:
    """Wait ``seconds`` without touching memory: a loop on the clock."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=100, help="forward passes a round")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    case = digits_case(10)
    predict = compiled(case, 400)
    batch = np.random.default_rng(0).integers(0, 256, (400, *case.images.shape[1:]))
    pixels = batch.astype(np.float32)

    def forward() -> None:
        predict(pixels)

    rows: list[Row] = []
    work = workloads()
    for name, task in work.items():
        alone: list[float] = []
        after: list[float] = []
        for _ in range(args.rounds):
            for times, first in ((alone, None), (after, forward)):
                for _ in range(args.calls):
                    if first is not None:
                        first()
                    start = time.perf_counter()
                    task()
                    times.append(time.perf_counter() - start)
        rows.append(
            {
                "measure": "host work",
                "work": name,
                "alone_us": statistics.median(alone) * 1e6,
                "after_forward_pass_us": statistics.median(after) * 1e6,
            }
        )
    draws = work["25,600 normal draws"]
    pause = rows[0]["alone_us"] * 1e-6  # as long as the draws take alone
    gaps = {"nothing": lambda: None, "an idle wait": lambda: spin(pause), "the draws": draws}
    model: dict[str, list[float]] = {name: [] for name in gaps}
    for _ in range(args.rounds):
        for name, gap in gaps.items():
            for _ in range(args.calls):
                gap()
                start = time.perf_counter()
                forward()
                model[name].append(time.perf_counter() - start)
    rows.append(
        {
            "measure": "forward pass, 400 rows",
            **{f"after {name}_us": statistics.median(times) * 1e6 for name, times in model.items()},
        }
    )
    for row in rows:
        cells = (
            f"{key} {value:,.0f}" if isinstance(value, float) else value
            for key, value in row.items()
        )
        print("  ".join(cells), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
