"""`make bench-smallest`: each image's smallest th, ours (``th=-1``) against IBM ART
1.20.1 (``th=None``), side by side in one run on the digits CNN.

For each attack type, ART's ``PixelAttack(th=None)`` / ``ThresholdAttack(th=None)`` and
ours attack the same correctly classified images with the same model, strategy and
per-search budget. ART binary-searches th in 1..127 (its ``generate``): 7 full attacks
per image, each probe a fresh search. Ours walks down from ``th_max`` = ART's range (127
for the Threshold attack; the image's 64 pixels for the Pixel attack on 8x8 digits, where
ART's probes above 64 wrap positions onto the same pixels).

How the per-search budgets correspond (ART's ``max_iter`` = M, ``--art-max-iter``):

- DE (``es=1``): ART hands its SciPy-derived DE a population multiplier
  ``max(1, 400 // D)``, so ``max(1, 400 // D) * D`` members for D genes, and evaluates
  the initial population plus M generations. Ours: ``popsize`` = that population at
  ``th_max`` (Pixel: D = 3 * 64, 384 members; Threshold: D = 64 values whatever th, 384)
  and ``max_iter`` = M + 1 (our initial population is the first step). ART's Pixel
  population changes with the probe's th (288 to 399 members); ours stays at 384.
- CMA-ES (``es=0``): ART runs pycma with its default population ``4 + floor(3 ln D)``
  for M iterations (its ``maxfun`` is far above that). Ours: that population at
  ``th_max`` (Pixel 19, Threshold 16) and ``max_iter`` = M. ART's Pixel population
  shrinks with th (7 at th=1); ours stays at 19.
- ART also spends one single-image query per generation and one per search to check
  success; those are model rows too and are counted.
- Ours ``es=2`` (random search, one query a step) is an extra row at DE's per-search
  budget, compared with ART's DE.

Queries are model rows, counted by wrapping each tool's classifier; ``model_only`` is our
compiled forward pass alone for the same calls (`strength.replay_seconds`), so a row says
how much of our time is the model's. "fooled" is what the
model says of each returned image (one batched call, not counted), so a row cannot claim
an image its returned image does not fool. An image's level is its returned image's
distance (pixels changed, or L-infinity): ours equals ``min_th``; ART keeps only one th
for the whole call (``adv_th``, the last image's), so its per-image level is read from
the image. "wrong" counts images whose returned image contradicts the tool's own search:
a th fooled but the image does not, its distance above that th, or nothing fooled but
the image changed (ART #960 was the first kind). Each ``th=-1`` row also runs the fixed
th = ``th_max`` attack with the same budget for the queries ratio.

ART is unseeded (global NumPy RNG, time-seeded pycma): its rows vary from run to run.
Writes JSON rows to ``--output`` (untracked by default) as they come, and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.cases import Case, digits_case
from benchmarks.run import compiled
from benchmarks.strength import Recorded, replay_seconds
from benchmarks.timing import Row, samples_of
from pixel_threshold.attack import (
    AttackConfig,
    PixelThresholdAttack,
    Predict,
    default_popsize,
    distances,
    make_encoding,
)
from pixel_threshold.models.classifier import CompiledClassifier

OUTPUT = Path("benchmarks/output/smallest.json")
ART_TH_RANGE = 127
"""ART 1.20.1's ``th=None`` binary-searches th in 1..127."""
ART_PROBES = ART_TH_RANGE.bit_length()
"""Full attacks per image in that binary search: always 7."""
ART_DE_MEMBERS = 400
"""ART's DE population: ``max(1, 400 // D)`` members per gene."""


@dataclass
class Outcome:
    """What one tool returned for every image, in the case's order."""

    tool: str
    seconds: float
    rows: int
    adversarial: npt.NDArray[np.uint8]
    found: list[int | None]
    """The smallest th its search says fooled each image, None if none did."""
    extra: Row = dataclasses.field(default_factory=dict)


def th_max(attack_type: str, shape: tuple[int, int, int]) -> int:
    """ART's search range, for the Pixel attack at most the image's pixels."""
    return ART_TH_RANGE if attack_type == "threshold" else min(ART_TH_RANGE, shape[0] * shape[1])


def art_de_population(dimension: int) -> int:
    """The members ART's DE evaluates a generation for ``dimension`` genes."""
    return max(5, max(1, ART_DE_MEMBERS // dimension) * dimension)


def our_configs(
    attack_type: str, shape: tuple[int, int, int], art_max_iter: int
) -> list[tuple[int, AttackConfig]]:
    """(ART es to compare with, our th=-1 config) at ART's per-search budgets."""
    top = th_max(attack_type, shape)
    dimension = make_encoding(attack_type, top, shape).dimension
    common = AttackConfig(attack_type=attack_type, th=-1, th_max=top, batch_size=400, seed=0)
    population = art_de_population(dimension)
    de = dataclasses.replace(common, es=1, max_iter=art_max_iter + 1, popsize=population)
    return [
        (1, de),
        (1, dataclasses.replace(de, loss="probability")),
        (
            0,
            dataclasses.replace(
                common, es=0, max_iter=art_max_iter, popsize=default_popsize(dimension)
            ),
        ),
        (1, dataclasses.replace(common, es=2, max_iter=de.max_iter * de.popsize, popsize=1)),
    ]


def run_ours(case: Case, predict: Predict, config: AttackConfig) -> Outcome:
    """Our attack on every image of ``case``."""
    samples = samples_of(case.images, case.labels)
    recorded = Recorded(predict)
    start = time.perf_counter()
    results = sorted(PixelThresholdAttack(config).run(samples, recorded), key=lambda r: r.index)
    seconds = time.perf_counter() - start
    model_only = replay_seconds(predict, case.images.shape[1:], recorded.calls)
    found = [result.min_th for result in results]
    if config.th != -1:
        found = [config.th if result.success else None for result in results]
    return Outcome(
        "ours",
        seconds,
        sum(rows * count for rows, count in recorded.calls.items()),
        np.stack([result.adversarial for result in results]),
        found,
        {
            "queries_reported": sum(result.queries for result in results),
            "model_calls": sum(recorded.calls.values()),
            "model_only_seconds": model_only,
            "ours_over_model_only": seconds / model_only,
        },
    )


def run_art(case: Case, attack_type: str, es: int, max_iter: int) -> Outcome:
    """ART's ``th=None`` attack on every image of ``case``, with its model rows counted
    and the th and outcome of every probe of its binary search recorded."""
    from art.attacks.evasion import PixelAttack, ThresholdAttack
    from art.estimators.classification import TensorFlowV2Classifier

    class Counting(TensorFlowV2Classifier):  # type: ignore[misc]
        rows = 0

        def predict(self, x: npt.NDArray[Any], *args: Any, **kwargs: Any) -> Any:
            self.rows += len(x)
            return super().predict(x, *args, **kwargs)

    probes: list[tuple[int, bool]] = []

    class RecordingPixel(PixelAttack):  # type: ignore[misc]
        def _attack(self, image: Any, target_class: Any, limit: int) -> tuple[bool, Any]:
            success, result = super()._attack(image, target_class, limit)
            probes.append((int(limit), bool(success)))
            return success, result

    class RecordingThreshold(ThresholdAttack):  # type: ignore[misc]
        def _attack(self, image: Any, target_class: Any, limit: int) -> tuple[bool, Any]:
            success, result = super()._attack(image, target_class, limit)
            probes.append((int(limit), bool(success)))
            return success, result

    classifier = Counting(
        case.model,
        nb_classes=case.classes,
        input_shape=case.images.shape[1:],
        clip_values=(0.0, 255.0),
    )
    recording = RecordingPixel if attack_type == "pixel" else RecordingThreshold
    attack = recording(classifier, th=None, es=es, max_iter=max_iter, verbose=False)
    start = time.perf_counter()
    with warnings.catch_warnings():  # ART hands pycma arrays where it wants scalars
        warnings.simplefilter("ignore")
        returned = attack.generate(case.images.astype(np.float32), y=case.labels)
    seconds = time.perf_counter() - start
    count = len(case.images)
    if len(probes) != ART_PROBES * count:
        raise RuntimeError(f"expected {ART_PROBES} ART probes an image, got {len(probes)}")
    if not np.array_equal(returned, np.clip(np.rint(returned), 0, 255)):
        raise RuntimeError("ART returned pixel values that are not integers in 0-255")
    per_image = [probes[i * ART_PROBES : (i + 1) * ART_PROBES] for i in range(count)]
    pixels = case.images.shape[1] * case.images.shape[2]
    return Outcome(
        "art",
        seconds,
        classifier.rows,
        returned.astype(np.uint8),
        [min((th for th, fooled in image if fooled), default=None) for image in per_image],
        {
            "art_adv_th": [int(th) for th in attack.adv_th],
            "probes": [[th for th, _ in image] for image in per_image],
            "probes_fooled": [[fooled for _, fooled in image] for image in per_image],
            "probes_beyond_pixels": (
                sum(th > pixels for th, _ in probes) if attack_type == "pixel" else 0
            ),
        },
    )


def levels(
    case: Case, predict: CompiledClassifier, attack_type: str, outcome: Outcome
) -> tuple[list[int | None], int]:
    """Each image's level (its returned image's distance if that image fools the model,
    else None) and how many images contradict the tool's own search (see the module)."""
    probs = predict(outcome.adversarial.astype(np.float32))
    fools = np.argmax(probs, axis=1) != case.labels
    result: list[int | None] = []
    wrong = 0
    for image, adversarial, fooled, found in zip(
        case.images, outcome.adversarial, fools, outcome.found, strict=True
    ):
        l0, _, linf = distances(image, adversarial)
        distance = l0 if attack_type == "pixel" else int(linf)
        result.append(distance if fooled else None)
        if found is None:
            wrong += int(distance > 0)
        else:
            wrong += int(not fooled or distance > found)
    return result, wrong


def mean(values: Sequence[float]) -> float | None:
    return statistics.mean(values) if values else None


def outcome_row(
    case: Case, predict: CompiledClassifier, attack_type: str, outcome: Outcome, setting: Row
) -> tuple[Row, list[int | None]]:
    """The row of one tool's outcome, and its per-image levels."""
    level, wrong = levels(case, predict, attack_type, outcome)
    count = len(case.images)
    fooled = [value for value in level if value is not None]
    row: Row = {
        "case": case.name,
        "attack_type": attack_type,
        "tool": outcome.tool,
        **setting,
        "images": count,
        "seconds": outcome.seconds,
        "queries_per_image": outcome.rows / count,
        "found": sum(found is not None for found in outcome.found),
        "fooled": len(fooled),
        "mean_level": mean(fooled),
        "median_level": statistics.median(fooled) if fooled else None,
        "wrong": wrong,
        "levels": level,
        "found_th": outcome.found,
        **outcome.extra,
    }
    return row, level


def compare(row: Row, art: Row) -> None:
    """Add to ``row`` (ours) the comparison with ART's row on the same images."""
    pairs = [
        (ours, theirs)
        for ours, theirs in zip(row["levels"], art["levels"], strict=True)
        if ours is not None and theirs is not None
    ]
    row["art_es"] = art["es"]
    row["art_over_ours_seconds"] = art["seconds"] / row["seconds"]
    row["both_fooled"] = len(pairs)
    row["mean_level_both"] = mean([ours for ours, _ in pairs])
    row["art_mean_level_both"] = mean([theirs for _, theirs in pairs])
    row["lower_equal_higher_than_art"] = [
        sum(ours < theirs for ours, theirs in pairs),
        sum(ours == theirs for ours, theirs in pairs),
        sum(ours > theirs for ours, theirs in pairs),
    ]


def print_row(row: Row) -> None:
    both = ""
    if row.get("both_fooled"):
        both = (
            f"{row['mean_level_both']:.2f} vs ART {row['art_mean_level_both']:.2f} "
            f"({row['both_fooled']} both)"
        )
    ratio = f"{row['art_over_ours_seconds']:.1f}x" if "art_over_ours_seconds" in row else "-"
    fixed = ""
    if "over_fixed_queries" in row:
        fixed = f"{row['over_fixed_queries']:.1f}x fixed, {row['over_budget_queries']:.2f}x budget"
    extra = ""
    if row["tool"] == "ours":
        extra = f"  ours/model_only={row['ours_over_model_only']:.1f}"
    else:
        extra = f"adv_th={row['art_adv_th']}"
        if row["probes_beyond_pixels"]:
            extra += f" probes>64px={row['probes_beyond_pixels']}"
    mean_level = "-" if row["mean_level"] is None else f"{row['mean_level']:.2f}"
    print(
        f"{row['attack_type']:<10}{row['tool']:<5}es={row['es']} {row['loss']:<12}"
        f"{row['seconds']:>8.1f}s {ratio:>7} {row['queries_per_image']:>8.0f} "
        f"{row['fooled']:>4}/{row['images']:<4}{mean_level:>7}  {both:<34}"
        f"{row['wrong']:>5}  {fixed}{extra}",
        flush=True,
    )


HEADER = (
    f"{'attack':<10}{'tool':<5}{'es':<5}{'loss':<12}{'wall':>9} {'ART/us':>7} {'q/img':>8} "
    f"{'fooled':>9} {'mean th':>6}  {'mean th, images both fool':<34}{'wrong':>5}  "
    "th=-1 queries vs fixed th_max / vs one search's budget"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--art-max-iter", type=int, default=5, help="ART's max_iter (M)")
    parser.add_argument("--art-es", default="1,0", help="ART's strategies ('' skips ART)")
    parser.add_argument("--attack-types", default="pixel,threshold")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    case = digits_case(args.images)
    predict = compiled(case, 400)
    shape = case.images.shape[1:]
    art_strategies = [int(es) for es in args.art_es.split(",") if es]
    rows: list[Row] = []

    def emit(row: Row) -> None:
        rows.append(row)
        print_row(row)
        args.output.write_text(json.dumps(rows, indent=1) + "\n")

    print(HEADER)
    for attack_type in args.attack_types.split(","):
        art_rows: dict[int, Row] = {}
        for art_es, config in our_configs(attack_type, shape, args.art_max_iter):
            if art_es in art_strategies and art_es == config.es and art_es not in art_rows:
                art_setting = {
                    "es": art_es,
                    "loss": "probability",
                    "th": None,
                    "th_max": ART_TH_RANGE,
                    "max_iter": args.art_max_iter,
                    "popsize": config.popsize,
                    "budget": config.max_iter * config.popsize,
                }
                outcome = run_art(case, attack_type, art_es, args.art_max_iter)
                art_rows[art_es], _ = outcome_row(case, predict, attack_type, outcome, art_setting)
                emit(art_rows[art_es])
            setting = {
                "es": config.es,
                "loss": config.loss,
                "th": config.th,
                "th_max": config.th_max,
                "max_iter": config.max_iter,
                "popsize": config.popsize,
                "budget": config.max_iter * config.popsize,
            }
            row, _ = outcome_row(
                case, predict, attack_type, run_ours(case, predict, config), setting
            )
            fixed = run_ours(case, predict, dataclasses.replace(config, th=config.th_max, th_max=0))
            row["fixed_queries_per_image"] = fixed.rows / len(case.images)
            row["fixed_seconds"] = fixed.seconds
            row["fixed_found"] = sum(found is not None for found in fixed.found)
            row["over_fixed_queries"] = row["queries_per_image"] / row["fixed_queries_per_image"]
            row["over_budget_queries"] = row["queries_per_image"] / row["budget"]
            if art_es in art_rows:
                compare(row, art_rows[art_es])
            emit(row)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
