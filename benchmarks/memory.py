"""Peak memory of an attack over 100 vs 1,000 images: it must not grow with the count.

Each count runs in a fresh process and reads its own high-water mark (VmHWM:
unlike ``ru_maxrss``, it does not inherit the parent's peak across fork and exec);
results are consumed as they stream out, as the MLflow step does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np


def attack_and_report(count: int) -> dict[str, Any]:
    """Attack ``count`` digits (cycling through the data set) with a small budget."""
    from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Sample
    from pixel_threshold.data.datasets import digits
    from pixel_threshold.models.classifier import CompiledClassifier
    from pixel_threshold.models.small_cnn import small_cnn

    split = digits(seed=0)
    images = np.concatenate([split.train_images, split.test_images])
    model = small_cnn((8, 8, 1), 10, seed=0)  # untrained: memory, not success, is measured
    labels = np.argmax(model(images.astype(np.float32)).numpy(), axis=1)
    config = AttackConfig(th=3, es=1, max_iter=3, popsize=100, batch_size=400)
    samples = (
        Sample(i, images[i % len(images)], int(labels[i % len(images)])) for i in range(count)
    )
    predict = CompiledClassifier(model, batch_size=400)
    baseline = peak_rss_mb()
    done = sum(1 for _ in PixelThresholdAttack(config).run(samples, predict))
    peak = peak_rss_mb()
    return {"images": done, "peak_rss_mb": peak, "growth_during_attack_mb": peak - baseline}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def peak_memory_rows(counts: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for count in counts:
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", str(count)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        measured = json.loads(output.strip().splitlines()[-1])
        rows.append({"case": "digits_cnn_memory", "tool": "ours", "th": 3, "es": 1, **measured})
        print(f"memory: {measured}", flush=True)
    return rows


if __name__ == "__main__":
    print(json.dumps(attack_and_report(int(sys.argv[1]))))
