"""`make bench`: ours vs ART's PixelAttack vs the model's own forward time, in one run.

Writes benchmarks/output/speed.json (untracked; a list of rows) and prints a table. Every
row of one case attacks the same images with the same model; ``model_only`` is
the compiled forward pass alone for the same number of queries at the same
batch size, timed in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.art_baseline import run_art
from benchmarks.cases import Case, digits_case, imagenet_sized_case, lite0_case
from benchmarks.memory import peak_memory_rows
from benchmarks.timing import Row, run_model_only, run_ours, trace_padded_shapes
from pixel_threshold.attack import (
    AttackConfig,
    default_popsize,
    make_encoding,
)
from pixel_threshold.models.classifier import CompiledClassifier

RESULTS = Path("benchmarks/output/speed.json")


def compiled(case: Case, batch_size: int) -> CompiledClassifier:
    """The case's classifier with every padded shape traced, so no timing includes tracing."""
    predict = CompiledClassifier(case.model, batch_size=batch_size)
    trace_padded_shapes(predict, case.images.shape[1:], batch_size)
    return predict


def bench_case(case: Case, *, max_iter: int, art: bool, repeats: int) -> list[Row]:
    rows: list[Row] = []
    shape = case.images.shape[1:]
    predict = compiled(case, 400)
    for th in (1, 3):
        dimension = make_encoding("pixel", th, shape).dimension
        for es in (0, 1):
            popsizes = [400] if es == 1 else [400, default_popsize(dimension)]
            for popsize in popsizes:
                config = AttackConfig(
                    th=th, es=es, max_iter=max_iter, popsize=popsize, batch_size=400, seed=0
                )
                common = {
                    "case": case.name,
                    "th": th,
                    "es": es,
                    "images": len(case.images),
                    "max_iter": max_iter,
                    "popsize": popsize,
                    "batch_size": 400,
                }
                ours = run_ours(case.images, case.labels, config, predict)
                rows.append({**common, "tool": "ours", **ours})
                rows.append(
                    {
                        **common,
                        "tool": "model_only",
                        **run_model_only(
                            predict,
                            shape,
                            predict.batch_size,
                            ours["queries_per_image"],
                            repeats,
                        ),
                    }
                )
                print_row(rows[-2])
                print_row(rows[-1])
            if art:
                rows.append(
                    {
                        **common,
                        "tool": "art",
                        "popsize": "art-default",
                        **run_art(case, th=th, es=es, max_iter=max_iter),
                    }
                )
                print_row(rows[-1])
    return rows


def print_row(row: Row) -> None:
    success = "" if row["success_rate"] is None else f"{row['success_rate']:.2f}"
    print(
        f"{row['case']:<18}{row['tool']:<11}th={row['th']} es={row['es']} "
        f"pop={row['popsize']!s:<12}images={row['images']:<4}success={success:<6}"
        f"queries/img={row['queries_per_image']:<10.0f}s/img={row['seconds_per_image']:.4f}",
        flush=True,
    )


def summary(rows: list[Row]) -> None:
    """Ratios: ours / model_only at equal queries, ART / ours per image and per query."""
    print("\nratios (same case, th, es, popsize):")
    for ours in (r for r in rows if r["tool"] == "ours" and "popsize" in r):
        key = (ours["case"], ours["th"], ours["es"])
        model = next(
            r
            for r in rows
            if r["tool"] == "model_only"
            and (r["case"], r["th"], r["es"], r["popsize"]) == (*key, ours["popsize"])
        )
        line = (
            f"{key[0]:<18}th={key[1]} es={key[2]} pop={ours['popsize']:<4} "
            f"ours/model_only={ours['seconds_per_image'] / model['seconds_per_image']:.2f}"
        )
        art = next(
            (r for r in rows if r["tool"] == "art" and (r["case"], r["th"], r["es"]) == key), None
        )
        if art is not None:
            per_query = (art["seconds_per_image"] / art["queries_per_image"]) / (
                ours["seconds_per_image"] / ours["queries_per_image"]
            )
            line += (
                f"  art/ours per image={art['seconds_per_image'] / ours['seconds_per_image']:.1f}"
                f" per query={per_query:.1f}  success ours={ours['success_rate']:.2f}"
                f" art={art['success_rate']:.2f}"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--digits-images", type=int, default=100, help="0 skips the case")
    parser.add_argument("--digits-max-iter", type=int, default=100)
    parser.add_argument("--large-images", type=int, default=2, help="0 skips the case")
    parser.add_argument("--large-max-iter", type=int, default=2)
    parser.add_argument(
        "--lite0-images",
        type=int,
        default=0,
        help="EfficientNet-Lite0 (ImageNet weights) on imagenet-sample's correct photos; 0 skips",
    )
    parser.add_argument("--lite0-max-iter", type=int, default=2)
    parser.add_argument("--no-art", action="store_true", help="skip ART (faster)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 100 vs 1,000 run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows: list[Row] = []
    cases = (  # (images, case, generations, forward-pass repeats of model_only)
        (args.digits_images, digits_case, args.digits_max_iter, 50),
        (args.large_images, imagenet_sized_case, args.large_max_iter, 3),
        (args.lite0_images, lite0_case, args.lite0_max_iter, 3),
    )
    for images, make_case, max_iter, repeats in cases:
        if images > 0:
            rows += bench_case(
                make_case(images), max_iter=max_iter, art=not args.no_art, repeats=repeats
            )
    if not args.no_memory:
        rows += peak_memory_rows((100, 1000))
    summary(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
