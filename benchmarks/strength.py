"""`make bench-search`: attack strength per query, every strategy and loss side by side.

For each setting, every strategy of the registry (`STRATEGIES`) attacks the same
images with the same model at an equal query budget (``max_iter * popsize``). A row
reports success with its denominator and Wilson 95% interval, the queries per image and
per success, the share fooled within smaller budgets (read from the same run: an image
stops at its first success), and the time against ``model_only``: the compiled forward
pass alone, replaying the same model calls (same sizes, same count) in the same run.

Writes JSON rows to ``--output`` (untracked by default) as they come, and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from benchmarks.cases import Case, digits_case, lite0_case
from benchmarks.run import compiled
from benchmarks.timing import Row, median_seconds, samples_of
from pixel_threshold.attack import (
    STRATEGIES,
    AttackConfig,
    PixelThresholdAttack,
    Predict,
)
from pixel_threshold.metrics import wilson_interval

OUTPUT = Path("benchmarks/output/strength.json")
WITHIN = (100, 1_000, 2_000, 10_000, 40_000)


class Recorded:
    """A classifier that counts its calls by size, so that ``model_only`` can replay them."""

    def __init__(self, predict: Predict) -> None:
        self.predict = predict
        self.calls: Counter[int] = Counter()

    def __call__(self, images: npt.NDArray[np.float32]) -> Any:
        self.calls[len(images)] += 1
        return self.predict(images)


def replay_seconds(predict: Predict, shape: Sequence[int], calls: Counter[int]) -> float:
    """The forward time of ``calls`` (rows -> count) on random images: the median of a few
    calls of each size, times its count."""
    rng = np.random.default_rng(0)
    largest = max(calls)
    batch = rng.integers(0, 256, (largest, *shape)).astype(np.float32)
    total = 0.0
    for rows, count in calls.items():
        chunk = batch[:rows]
        total += count * median_seconds(lambda: predict(chunk), max(3, min(20, count)))  # noqa: B023
    return total


class Attacked(Protocol):
    """Images a model classifies correctly, by name (a `cases.Case`, or any model's)."""

    @property
    def name(self) -> str: ...

    @property
    def images(self) -> npt.NDArray[np.uint8]: ...

    @property
    def labels(self) -> npt.NDArray[np.int64]: ...


def strength_row(case: Attacked, predict: Predict, config: AttackConfig, setting: str) -> Row:
    """Attack every image of ``case`` with ``config``; success, queries and timing."""
    samples = samples_of(case.images, case.labels)
    recorded = Recorded(predict)
    start = time.perf_counter()
    results = list(PixelThresholdAttack(config).run(samples, recorded))
    seconds = time.perf_counter() - start
    attacked = [result for result in results if result.attacked]
    fooled = [result.queries for result in attacked if result.success]
    low, high = wilson_interval(len(fooled), len(attacked))
    budget = config.max_iter * config.popsize
    model_only = replay_seconds(predict, case.images.shape[1:], recorded.calls)
    return {
        "case": case.name,
        "setting": setting,
        "attack_type": config.attack_type,
        "th": config.th,
        "es": config.es,
        "loss": config.loss,
        "max_iter": config.max_iter,
        "popsize": config.popsize,
        "budget": budget,
        "images": len(attacked),
        "fooled": len(fooled),
        "success_rate": len(fooled) / len(attacked),
        "ci_low": low,
        "ci_high": high,
        "queries_per_image": sum(result.queries for result in attacked) / len(attacked),
        "mean_queries_per_success": statistics.mean(fooled) if fooled else None,
        "median_queries_per_success": statistics.median(fooled) if fooled else None,
        "fooled_within": {n: sum(q <= n for q in fooled) for n in WITHIN if n <= budget},
        "seconds": seconds,
        "model_only_seconds": model_only,
        "ours_over_model_only": seconds / model_only,
    }


def print_row(row: Row) -> None:
    mean = row["mean_queries_per_success"]
    median = row["median_queries_per_success"]
    within = " ".join(f"<={n}:{k}" for n, k in row["fooled_within"].items())
    print(
        f"{row['case']:<15}{row['setting']:<22}es={row['es']} {row['loss']:<12}"
        f"budget={row['budget']:<6} fooled {row['fooled']}/{row['images']} "
        f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]  q/img={row['queries_per_image']:<8.0f}"
        f"q/success mean={'-' if mean is None else f'{mean:.0f}':<6} "
        f"median={'-' if median is None else f'{median:.0f}':<6} {within}  "
        f"ours/model_only={row['ours_over_model_only']:.2f}",
        flush=True,
    )


def equal_budget(es: int, budget: int, popsize: int = 400) -> tuple[int, int]:
    """(max_iter, popsize) spending ``budget`` queries: populations of ``popsize`` for
    CMA-ES and DE, one query a step for the random search (`StrategyRecord.equal_budget`)."""
    return STRATEGIES[es].equal_budget(budget // popsize, popsize)


DIGITS_TH = {"pixel": (1, 3), "threshold": (8, 16)}
"""The th of each attack type on the digits CNN: a few images fooled at the first, most
(Pixel) or a tenth (Threshold) at the second, at 40,000 queries."""


def digits_settings(
    attack_types: Sequence[str], losses: Sequence[str]
) -> list[tuple[str, AttackConfig]]:
    """Each attack type at its `DIGITS_TH` and DE's budget (100 x 400), every strategy
    and each of ``losses``."""
    settings = []
    for attack_type in attack_types:
        for th, es, loss in itertools.product(DIGITS_TH[attack_type], STRATEGIES, losses):
            max_iter, popsize = equal_budget(es, 40_000)
            config = AttackConfig(
                attack_type=attack_type,
                th=th,
                es=es,
                loss=loss,
                max_iter=max_iter,
                popsize=popsize,
                batch_size=400,
            )
            settings.append((f"{attack_type} th={th}", config))
    return settings


def lite0_settings(losses: Sequence[str]) -> list[tuple[str, AttackConfig]]:
    """The issue's Lite0 settings: the random search's Threshold th=12 and th=4 and Pixel
    th=50, then Pixel th=3 at 2,000 queries for every strategy."""
    settings = []
    for loss in losses:
        for attack_type, th, budget in (("threshold", 12, 10_000), ("threshold", 4, 1_000)):
            config = AttackConfig(
                attack_type=attack_type, th=th, es=2, loss=loss, max_iter=budget, popsize=1
            )
            settings.append((f"{attack_type} th={th}", config))
        config = AttackConfig(th=50, es=2, loss=loss, max_iter=10_000, popsize=1)
        settings.append(("pixel th=50", config))
        for es in sorted(STRATEGIES, reverse=True):
            max_iter, popsize = equal_budget(es, 2_000, popsize=100)
            config = AttackConfig(th=3, es=es, loss=loss, max_iter=max_iter, popsize=popsize)
            settings.append(("pixel th=3", config))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--digits-images", type=int, default=100, help="0 skips the case")
    parser.add_argument(
        "--digits-attacks", default="pixel", help="comma-separated attack types on the digits"
    )
    parser.add_argument(
        "--digits-losses", default="margin,probability", help="comma-separated losses on the digits"
    )
    parser.add_argument("--lite0-images", type=int, default=23, help="0 skips the case")
    parser.add_argument(
        "--lite0-losses", default="margin", help="comma-separated losses for the Lite0 case"
    )
    parser.add_argument("--only", default="", help="run only settings whose name has this")
    parser.add_argument(
        "--es", default=",".join(map(str, STRATEGIES)), help="comma-separated strategies to run"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    Settings = Callable[[], list[tuple[str, AttackConfig]]]
    cases: tuple[tuple[int, Callable[[int], Case], Settings], ...] = (
        (
            args.digits_images,
            digits_case,
            lambda: digits_settings(args.digits_attacks.split(","), args.digits_losses.split(",")),
        ),
        (args.lite0_images, lite0_case, lambda: lite0_settings(args.lite0_losses.split(","))),
    )
    for images, make_case, settings in cases:
        if images <= 0:
            continue
        case = make_case(images)
        predict = compiled(case, 400)
        for setting, config in settings():
            if args.only not in setting or str(config.es) not in args.es.split(","):
                continue
            rows.append(strength_row(case, predict, config, setting))
            print_row(rows[-1])
            args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
