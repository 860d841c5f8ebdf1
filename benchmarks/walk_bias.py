"""`make bench-smallest` (after `benchmarks.smallest`): is ``th=-1``'s smallest th unbiased?

For each attack type, strategy and seed, the walk (``th=-1``) and fixed-th runs of the
same strategy, budget and seed attack the same digits. At each fixed th t, two counts:
``walk_above`` (the fixed run fooled the image, the walk's min_th is above t or none)
and ``walk_within`` (the walk's min_th is at most t, the fixed run did not fool it). An
unbiased walk has them about equal; the walk's query cost is the mean queries an image.

Writes JSON rows to ``--output`` (untracked by default) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from benchmarks.cases import digits_case
from benchmarks.run import compiled
from benchmarks.timing import Row, samples_of
from pixel_threshold.attack import (
    AttackConfig,
    ImageResult,
    PixelThresholdAttack,
    Predict,
    Sample,
)

OUTPUT = Path("benchmarks/output/walk_bias.json")
FIXED = {"threshold": (16, 24, 32), "pixel": (1, 2, 3)}
TH_MAX = {"threshold": 64, "pixel": 8}
BUDGETS = {2: (300, 1), 1: (10, 30)}
"""Each strategy's (max_iter, popsize): 300 queries a search."""


def attacked(
    config: AttackConfig, samples: list[Sample], predict: Predict
) -> dict[int, ImageResult]:
    """The results of the attacked images of ``samples``, by index."""
    results = PixelThresholdAttack(config).run(samples, predict)
    return {result.index: result for result in results if result.attacked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    case = digits_case(args.images)
    predict = compiled(case, 400)
    samples = samples_of(case.images, case.labels)
    rows: list[Row] = []
    for attack_type, levels in FIXED.items():
        for es, (max_iter, popsize) in BUDGETS.items():
            for seed in (int(text) for text in args.seeds.split(",")):
                base = AttackConfig(
                    attack_type=attack_type, es=es, max_iter=max_iter, popsize=popsize, seed=seed
                )
                walk_config = dataclasses.replace(base, th=-1, th_max=TH_MAX[attack_type])
                walk = attacked(walk_config, samples, predict)
                walk_queries = sum(result.queries for result in walk.values()) / len(walk)
                for th in levels:
                    fixed = attacked(dataclasses.replace(base, th=th), samples, predict)
                    above = within = 0
                    for index, result in fixed.items():
                        level = walk[index].min_th
                        walk_fooled = level is not None and level <= th
                        above += result.success and not walk_fooled
                        within += walk_fooled and not result.success
                    rows.append(
                        {
                            "attack_type": attack_type,
                            "es": es,
                            "seed": seed,
                            "th": th,
                            "budget": max_iter * popsize,
                            "images": len(fixed),
                            "fixed_fooled": sum(result.success for result in fixed.values()),
                            "walk_fooled_within_th": sum(
                                r.min_th is not None and r.min_th <= th for r in walk.values()
                            ),
                            "walk_above": above,
                            "walk_within": within,
                            "walk_queries_per_image": walk_queries,
                        }
                    )
                    print(
                        f"{attack_type:<10} es={es} seed={seed} th={th:<3} fixed fooled "
                        f"{rows[-1]['fixed_fooled']:>3}, walk within th "
                        f"{rows[-1]['walk_fooled_within_th']:>3}; fixed-only {above:>3}, "
                        f"walk-only {within:>3}; walk {walk_queries:,.0f} queries an image",
                        flush=True,
                    )
                    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
