"""Local vs Ray-sharded attack: seconds per image and queries per second, in one run.

``python -m benchmarks.ray_scaling`` attacks the same digits images with the same
configuration here (TensorFlow's default threads, one per core) and on a throw-away
Ray head on 127.0.0.1 with 1 and 2 worker CPUs (one single-threaded worker per CPU).
Each Ray row attacks the images twice on the same connection: ``cold`` includes
starting the workers and loading the model in each (the fixed cost of a run), ``warm``
is the second pass (workers already hold the model). Prints a table and writes
benchmarks/output/ray_scaling.json (untracked; a list of rows).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.cases import digits_case
from benchmarks.run import compiled
from benchmarks.timing import samples_of
from pixel_threshold.attack import AttackConfig, ImageResult, Sample
from pixel_threshold.steps import sharding
from tests.ray_head import ray_head

RESULTS = Path("benchmarks/output/ray_scaling.json")
Row = dict[str, Any]


def timed(search: sharding.Search, samples: list[Sample]) -> tuple[float, list[ImageResult]]:
    start = time.perf_counter()
    results = sorted(search(samples), key=lambda result: result.index)
    return time.perf_counter() - start, results


def row(mode: str, workers: int | None, seconds: float, results: list[ImageResult]) -> Row:
    queries = sum(result.queries for result in results)
    return {
        "mode": mode,
        "workers": workers,
        "images": len(results),
        "seconds": seconds,
        "seconds_per_image": seconds / len(results),
        "queries_per_second": queries / seconds,
        "success_rate": sum(result.success for result in results) / len(results),
    }


def print_row(entry: Row) -> None:
    workers = "-" if entry["workers"] is None else entry["workers"]
    print(
        f"{entry['mode']:<10}{workers!s:>8}{entry['images']:>8}{entry['seconds']:>10.1f}"
        f"{entry['seconds_per_image']:>12.4f}{entry['queries_per_second']:>12.0f}"
        f"{entry['success_rate']:>9.2f}  {entry.get('same_as_local', '')}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--th", type=int, default=1)
    parser.add_argument("--es", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--popsize", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=400)
    parser.add_argument("--shard-size", type=int, default=10)
    parser.add_argument("--workers", default="1,2", help="comma-separated Ray worker CPUs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    case = digits_case(args.images)
    config = AttackConfig(
        th=args.th,
        es=args.es,
        max_iter=args.max_iter,
        popsize=args.popsize,
        batch_size=args.batch_size,
        seed=0,
    )
    samples = samples_of(case.images, case.labels)
    classifier = compiled(case, args.batch_size)
    common = {
        "case": case.name,
        "th": args.th,
        "es": args.es,
        "max_iter": args.max_iter,
        "popsize": args.popsize,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
    }
    print(
        f"{'mode':<10}{'workers':>8}{'images':>8}{'seconds':>10}{'s/image':>12}"
        f"{'queries/s':>12}{'success':>9}  same as local"
    )
    with sharding.searching(config, classifier) as search:
        seconds, local = timed(search, samples)
    rows = [{**common, **row("local", None, seconds, local)}]
    print_row(rows[-1])
    for workers in (int(count) for count in args.workers.split(",")):
        with (
            ray_head(num_cpus=workers) as head,
            sharding.searching(
                config, classifier, ray_address=head.address, shard_size=args.shard_size
            ) as search,
        ):
            for mode in ("ray_cold", "ray_warm"):
                seconds, results = timed(search, samples)
                same = [_key(result) for result in results] == [_key(r) for r in local]
                rows.append({**common, **row(mode, workers, seconds, results)})
                rows[-1]["same_as_local"] = same
                print_row(rows[-1])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n")
    print(f"\nwrote {args.output}")


def _key(result: ImageResult) -> tuple[Any, ...]:
    """What must agree between two runs of one image: outcome, budget and pixels."""
    return (
        result.index,
        result.success,
        result.queries,
        result.label_after,
        result.p_true_after,
        result.adversarial.tobytes(),
    )


if __name__ == "__main__":
    main()
