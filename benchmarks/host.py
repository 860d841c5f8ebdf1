"""`make bench-host`: how close each strategy comes to the model alone, and where the rest
of the time goes.

For each setting (es 0, 1 and 2, Pixel and Threshold), our attack runs on the digits CNN
(and, with ``--lite0-images``, EfficientNet-Lite0 on the imagenet-sample photos), and
``model_only`` replays every one of its model calls, in order, on the compiled forward
pass alone (random images of the same sizes), timed in full as ours is: no median of a
few calls standing in for the rest, which would leave out the slow calls ours pays for.
Ours and the replay alternate ``--repeats`` times; a row reports the medians and the
median of the per-repeat ratios (the machine is noisy: never one run).

The profile splits ours into a call's parts: ``decode`` (candidates written as pixels,
`Encoding.decode_into`), ``model`` (inside the forward pass, as ours calls it; its excess
over ``model_only`` is what the host's work between calls costs the model: caches, idle
threads) and ``search`` (everything else: the strategy's ask and tell, losses,
bookkeeping), each in microseconds a model call. It wraps the encodings' ``decode_into``
to time it, so it needs nothing but the public core and runs on earlier versions too
(``PYTHONPATH=<an older checkout>/src``: a profile before and after).

Writes JSON rows to ``--output`` (untracked by default) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.cases import Case, digits_case, lite0_case
from benchmarks.run import compiled
from benchmarks.timing import Clock, Row, replayed_seconds, samples_of, timed_decoding
from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Predict

OUTPUT = Path("benchmarks/output/host.json")
DIGITS_SETTINGS = {  # name: (config, images)
    "es=2 pixel th=1, 1 x 1,000, 100 in flight": (
        AttackConfig(th=1, es=2, max_iter=1_000, popsize=1, batch_size=100),
        300,
    ),
    "es=2 threshold th=8, 1 x 1,000, 100 in flight": (
        AttackConfig(
            attack_type="threshold", th=8, es=2, max_iter=1_000, popsize=1, batch_size=100
        ),
        300,
    ),
    "es=1 pixel th=3, 400 x 10": (AttackConfig(th=3, es=1, max_iter=10, popsize=400), 100),
    "es=1 threshold th=8, 400 x 10": (
        AttackConfig(attack_type="threshold", th=8, es=1, max_iter=10, popsize=400),
        100,
    ),
    "es=0 pixel th=3, 400 x 10": (AttackConfig(th=3, es=0, max_iter=10, popsize=400), 100),
    "es=0 threshold th=8, 400 x 10": (
        AttackConfig(attack_type="threshold", th=8, es=0, max_iter=10, popsize=400),
        100,
    ),
}
LITE0_SETTINGS = {
    "es=2 pixel th=3, 1 x 200": AttackConfig(th=3, es=2, max_iter=200, popsize=1, batch_size=64),
    "es=2 threshold th=4, 1 x 200": AttackConfig(
        attack_type="threshold", th=4, es=2, max_iter=200, popsize=1, batch_size=64
    ),
    "es=1 pixel th=3, 64 x 3": AttackConfig(th=3, es=1, max_iter=3, popsize=64, batch_size=64),
    "es=0 pixel th=3, 64 x 3": AttackConfig(th=3, es=0, max_iter=3, popsize=64, batch_size=64),
    # 150,528 genes a candidate: DE's Latin hypercube start (about 0.2 s an image) spread
    # over ten generations, not three (an attack runs 100 by default)
    "es=1 threshold th=4, 64 x 10": AttackConfig(
        attack_type="threshold", th=4, es=1, max_iter=10, popsize=64, batch_size=64
    ),
    "es=0 threshold th=4, 64 x 10": AttackConfig(
        attack_type="threshold", th=4, es=0, max_iter=10, popsize=64, batch_size=64
    ),
}


def profiled_run(
    config: AttackConfig, images: npt.NDArray[np.uint8], labels: npt.NDArray[Any], predict: Predict
) -> tuple[float, Clock, int, int]:
    """Our attack's wall seconds, its clock, and the images fooled and attacked."""
    clock = Clock()

    def model(pixels: npt.NDArray[np.float32]) -> Any:
        clock.calls.append(len(pixels))
        start = time.perf_counter()
        scores = predict(pixels)
        clock.model += time.perf_counter() - start
        return scores

    samples = samples_of(images, labels)
    undo = timed_decoding(clock)
    try:
        start = time.perf_counter()
        results = list(PixelThresholdAttack(config).run(samples, model))
        seconds = time.perf_counter() - start
    finally:
        undo()
    attacked = [result for result in results if result.attacked]
    return seconds, clock, sum(result.success for result in attacked), len(attacked)


def setting_row(case: Case, predict: Predict, name: str, config: AttackConfig, repeats: int) -> Row:
    ours, replays, clocks = [], [], []
    fooled = attacked = 0
    for _ in range(repeats):
        seconds, clock, fooled, attacked = profiled_run(config, case.images, case.labels, predict)
        ours.append(seconds)
        clocks.append(clock)
        replays.append(replayed_seconds(predict, case.images.shape[1:], clock.calls))
    calls = len(clocks[0].calls)
    model = statistics.median(clock.model for clock in clocks)
    decode = statistics.median(clock.decode for clock in clocks)
    wall, replay = statistics.median(ours), statistics.median(replays)
    return {
        "case": case.name,
        "setting": name,
        "attack_type": config.attack_type,
        "th": config.th,
        "es": config.es,
        "max_iter": config.max_iter,
        "popsize": config.popsize,
        "batch_size": config.batch_size,
        "images": attacked,
        "fooled": fooled,
        "model_calls": calls,
        "repeats": repeats,
        "seconds": wall,
        "model_only_seconds": replay,
        "ours_over_model_only": statistics.median(
            seconds / replay for seconds, replay in zip(ours, replays, strict=True)
        ),
        "per_call_us": {
            "model_only": replay / calls * 1e6,
            "model": model / calls * 1e6,
            "decode": decode / calls * 1e6,
            "search": (wall - model - decode) / calls * 1e6,
        },
    }


def print_row(row: Row) -> None:
    parts = "  ".join(f"{part} {us:,.0f}" for part, us in row["per_call_us"].items())
    print(
        f"{row['case']:<16}{row['setting']:<48}fooled {row['fooled']:>3}/{row['images']:<4}"
        f"ours/model_only {row['ours_over_model_only']:.2f}  us a call: {parts}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="run the settings whose name has this")
    parser.add_argument(
        "--batch-size", type=int, default=0, help="rows a model call for every setting (0: its own)"
    )
    parser.add_argument("--lite0-images", type=int, default=0, help="0 skips Lite0")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    cases: list[tuple[Case, dict[str, tuple[AttackConfig, int]]]] = []
    digits = digits_case(max(images for _, images in DIGITS_SETTINGS.values()))
    cases.append((digits, DIGITS_SETTINGS))
    if args.lite0_images:
        lite0 = lite0_case(args.lite0_images)
        cases.append(
            (lite0, {name: (config, args.lite0_images) for name, config in LITE0_SETTINGS.items()})
        )
    rows: list[Row] = []
    for case, settings in cases:
        if args.batch_size:
            settings = {
                name: (dataclasses.replace(config, batch_size=args.batch_size), images)
                for name, (config, images) in settings.items()
            }
        predict = compiled(case, max(config.batch_size for config, _ in settings.values()))
        for name, (config, images) in settings.items():
            if args.only not in name:
                continue
            subset = Case(
                case.name, case.model, case.images[:images], case.labels[:images], case.classes
            )
            rows.append(setting_row(subset, predict, name, config, args.repeats))
            print_row(rows[-1])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
