"""`python -m benchmarks.gpu`: the host out of the model's way on a GPU (issue 24), on
PyTorch, the GPU machine's own framework (no TensorFlow, no MLflow needed there).

For each model (ResNet50 from torchvision, EfficientNet-Lite0 from timm, random weights:
speed only; ``small``, a tiny CNN, for a dry run anywhere) at 224x224, and each setting
(es 0, 1 and 2, Pixel and Threshold), in one run, alternating ``--repeats`` times:

- ``ours``: our attack on the model as the pytorch backend loads it (`TorchForward`),
  decoding the candidates on the device (the default there), and ``ours_host``, the same
  attack decoding them on the host (what every call cost before): the same results, bit
  for bit (``same_results``);
- ``model_only``: every model call of ours replayed, in order, on the forward pass fed
  from host memory (what a user's own predict costs), and ``model_on_device``: the same
  calls on inputs already on the device (the model alone, the strictest floor);
- ``art``: IBM ART 1.20.1's PixelAttack (es 0 and 1) on the same forward pass, fed from
  host memory. Not its ThresholdAttack: at 224x224x3 its 150,528 genes make its DE
  population 150,528 candidates a generation and its CMA-ES allocate a 150,528 x 150,528
  covariance (169 GiB; it fails on the first image).

Each row has the medians, ours ÷ model_only, ours ÷ model_on_device, and a profile in
microseconds a model call: ``call`` (the classifier's or its decoder's whole call:
decoding on the device, transfers, the model), ``model`` (inside it, the module's
forward and its outputs' copy back), ``decode`` (candidates written as pixels on the
host) and ``search`` (the rest: the strategy, losses, bookkeeping).

The images are scikit-image's photos in their eight flips and turns (48 distinct), each
labelled with the model's own prediction. On the GPU machine (Python 3.12, torch,
torchvision and timm installed; ART and pycma carried as wheels, docs/benchmarks.md)::

    PYTHONPATH=src:. python3 -m benchmarks.gpu --output $OUT/gpu.json

and for a dry run here: ``python -m benchmarks.gpu --models small --device cpu --quick``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from benchmarks.art_baseline import run_art_black_box
from benchmarks.photos import SHAPE, photos
from benchmarks.timing import Clock, Row, replayed_seconds, samples_of, timed_decoding
from pixel_threshold.attack import AttackConfig, PixelThresholdAttack
from pixel_threshold.attack.changes import ScoreChanges
from pixel_threshold.models.backends.pytorch import TorchForward
from pixel_threshold.models.backends.torch_decoding import prepared
from pixel_threshold.models.conventions import InputConventions

IMAGENET = InputConventions((0.0, 1.0), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "NCHW")
"""torchvision's ImageNet preprocessing, as the attack's parameters give it."""
CLASSES = 1000


def settings(quick: bool) -> dict[str, tuple[AttackConfig, int]]:
    """Each setting's name: its config and how many images it attacks, cheapest first (a
    run cut short keeps them). es 2: one query an image a step, 48 images in flight; es 0
    and 1: the paper's population, three images' generations a call (1,200 rows:
    ResNet50's activations stay well inside an H100). The Threshold attack's es 0 and 1
    run two generations: their host work (150,528 genes a candidate) is seconds a call.
    ``quick``: a generation or a few steps each, for a dry run."""
    steps, generations = (5, 1) if quick else (200, 5)
    chosen: dict[str, tuple[AttackConfig, int]] = {}
    for es, attack_type, th in (
        (2, "pixel", 3),
        (2, "threshold", 4),
        (1, "pixel", 3),
        (0, "pixel", 3),
        (1, "threshold", 4),
        (0, "threshold", 4),
    ):
        if es == 2:
            popsize, max_iter, batch_size, images = 1, steps, 48, 48
            name = f"es=2 {attack_type} th={th}, 1 x {steps}, 48 in flight"
        else:
            popsize, batch_size, images = 400, 1_200, 3
            max_iter = generations if attack_type == "pixel" else min(generations, 2)
            name = f"es={es} {attack_type} th={th}, 400 x {max_iter}"
        config = AttackConfig(
            attack_type=attack_type,
            th=th,
            es=es,
            popsize=popsize,
            max_iter=max_iter,
            batch_size=batch_size,
        )
        chosen[name] = (config, images)
    return chosen


def build(name: str, device: torch.device) -> torch.nn.Module:
    """The model ``name`` with random weights (seeded), in inference form on ``device``."""
    torch.manual_seed(0)
    if name == "resnet50":
        from torchvision.models import resnet50

        module: torch.nn.Module = resnet50(weights=None)
    elif name == "lite0":
        import timm

        module = timm.create_model("efficientnet_lite0", pretrained=False)
    elif name == "small":
        module = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 7, stride=4),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, CLASSES),
        )
    else:
        raise ValueError(f"expected a model in (resnet50, lite0, small), got {name!r}")
    return module.eval().to(device)


def images_of(count: int) -> npt.NDArray[np.uint8]:
    """``count`` <= 48 distinct (224, 224, 3) images: the six photos in their eight flips
    and quarter turns."""
    base = photos(6)
    turned = [np.rot90(base, turns, axes=(1, 2)) for turns in range(4)]
    every = np.concatenate(turned + [image[:, :, ::-1] for image in turned])
    return np.ascontiguousarray(every[:count])


@dataclasses.dataclass(frozen=True)
class Subject:
    """A model under test: its name, its module, the device it runs on."""

    name: str
    module: torch.nn.Module
    device: torch.device

    def forward(self, batch_size: int, **options: Any) -> TorchForward:
        """The module as the pytorch backend loads it, taking ImageNet-normalised input."""
        return TorchForward(self.module, self.device, IMAGENET, batch_size=batch_size, **options)


@dataclasses.dataclass
class CallClock(Clock):
    """`Clock` with the whole time of the classifier's (or its decoder's) calls."""

    call: float = 0.0


class Timed:
    """``forward`` as the attack's classifier, each of its calls and its decoder's timed
    into ``clock`` (its rows and whole time), and its module's forward too (``model``)."""

    def __init__(self, forward: TorchForward, clock: CallClock) -> None:
        self.forward = forward
        self.clock = clock
        self.batch_size = forward.batch_size
        scores = forward.scores

        def timed_scores(inputs: torch.Tensor) -> npt.NDArray[np.float32]:
            start = time.perf_counter()
            try:
                return scores(inputs)
            finally:
                clock.model += time.perf_counter() - start

        forward.scores = timed_scores  # type: ignore[method-assign]

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        scores: npt.NDArray[Any] = self._timed(self.forward, pixels, len(pixels))
        return scores

    def decoding(self) -> ScoreChanges | None:
        decoder = self.forward.decoding()
        if decoder is None:
            return None
        return lambda rows: self._timed(decoder, rows, len(rows))

    def _timed(self, call: Callable[[Any], Any], argument: Any, rows: int) -> Any:
        self.clock.calls.append(rows)
        start = time.perf_counter()
        try:
            return call(argument)
        finally:
            self.clock.call += time.perf_counter() - start


Outcome = list[tuple[int, bool, int, bytes]]


def profiled(
    subject: Subject,
    config: AttackConfig,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    *,
    on_device: bool,
) -> tuple[float, CallClock, Outcome]:
    """Our attack's wall seconds, its clock, and its results (index, success, queries,
    adversarial image), decoding on the device or on the host."""
    forward = subject.forward(config.batch_size, decode_on_device=on_device)
    clock = CallClock()
    undo = timed_decoding(clock)
    try:
        start = time.perf_counter()
        results = list(
            PixelThresholdAttack(config).run(samples_of(images, labels), Timed(forward, clock))
        )
        seconds = time.perf_counter() - start
    finally:
        undo()
    outcome = sorted((r.index, r.success, r.queries, r.adversarial.tobytes()) for r in results)
    return seconds, clock, outcome


def on_device_seconds(subject: Subject, calls: list[int]) -> float:
    """The module alone on calls of ``calls`` rows, in order, on random inputs already
    prepared on its device."""
    forward = subject.forward(max(calls))
    pixels = torch.randint(0, 256, (max(calls), *SHAPE), device=subject.device).float()
    inputs = prepared(pixels, IMAGENET)
    forward.scores(inputs[:1])  # waits for the inputs
    start = time.perf_counter()
    for rows in calls:
        forward.scores(inputs[:rows])
    return time.perf_counter() - start


def per_call_us(clock: CallClock, seconds: float) -> dict[str, float]:
    calls = len(clock.calls)
    return {
        "call": clock.call / calls * 1e6,
        "model": clock.model / calls * 1e6,
        "decode": clock.decode / calls * 1e6,
        "search": (seconds - clock.call - clock.decode) / calls * 1e6,
    }


def setting_row(
    subject: Subject,
    name: str,
    config: AttackConfig,
    images: npt.NDArray[np.uint8],
    repeats: int,
) -> Row:
    """One setting, alternating ours (device, host) and the replays ``repeats`` times
    after one run to warm up."""
    host = subject.forward(config.batch_size)
    labels = predicted(host, images)
    runs: dict[str, list[float]] = {
        key: [] for key in ("ours", "ours_host", "model_only", "model_on_device")
    }
    clocks: dict[str, list[CallClock]] = {"ours": [], "ours_host": []}
    outcomes = []
    for repeat in range(repeats + 1):
        timed: dict[str, float] = {}
        for key, on_device in (("ours", True), ("ours_host", False)):
            seconds, clock, outcome = profiled(subject, config, images, labels, on_device=on_device)
            timed[key] = seconds
            if repeat:
                clocks[key].append(clock)
            outcomes.append(outcome)
        timed["model_only"] = replayed_seconds(host, SHAPE, clock.calls)
        timed["model_on_device"] = on_device_seconds(subject, clock.calls)
        if repeat:
            for key, seconds in timed.items():
                runs[key].append(seconds)
    calls = clocks["ours"][0].calls
    row: Row = {
        "model": subject.name,
        "setting": name,
        "attack_type": config.attack_type,
        "th": config.th,
        "es": config.es,
        "popsize": config.popsize,
        "max_iter": config.max_iter,
        "batch_size": config.batch_size,
        "images": len(images),
        "fooled": sum(success for _, success, _, _ in outcomes[0]),
        "queries": sum(queries for _, _, queries, _ in outcomes[0]),
        "model_calls": len(calls),
        "repeats": repeats,
        "same_results": all(outcome == outcomes[0] for outcome in outcomes),
        "seconds": {key: statistics.median(values) for key, values in runs.items()},
    }
    for ours in ("ours", "ours_host"):
        for floor in ("model_only", "model_on_device"):
            ratios = [a / b for a, b in zip(runs[ours], runs[floor], strict=True)]
            row[f"{ours}_over_{floor}"] = statistics.median(ratios)
        middle = sorted(range(repeats), key=lambda i: runs[ours][i])[repeats // 2]
        row[f"per_call_us_{ours}"] = per_call_us(clocks[ours][middle], runs[ours][middle])
    return row


def predicted(forward: TorchForward, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """The model's own labels of ``images``, a batch a call."""
    parts = [
        np.argmax(forward(images[start : start + forward.batch_size].astype(np.float32)), axis=1)
        for start in range(0, len(images), forward.batch_size)
    ]
    return np.concatenate(parts).astype(np.int64)


def art_row(
    subject: Subject, name: str, config: AttackConfig, images: npt.NDArray[np.uint8]
) -> Row:
    """ART's attack of ``config``'s kind on the same images and forward pass (host-fed)."""
    host = subject.forward(config.batch_size)
    art = run_art_black_box(images, predicted(host, images), config, host, classes=CLASSES)
    return {"model": subject.name, "setting": name, "tool": "art", "images": len(images), **art}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="resnet50,lite0")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default="", help="run the settings whose name has this")
    parser.add_argument("--quick", action="store_true", help="a few steps a setting")
    parser.add_argument("--no-art", action="store_true")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/output/gpu.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    header = {
        "card": card,
        "torch": torch.__version__,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
    }
    print(header, flush=True)
    subjects = [Subject(model, build(model, device), device) for model in args.models.split(",")]
    rows: list[Row] = []
    for name, (config, count) in settings(args.quick).items():
        if args.only not in name:
            continue
        images = images_of(count)
        for subject in subjects:
            row = setting_row(subject, name, config, images, args.repeats)
            rows.append({**header, **row})
            print_row(rows[-1])
            if not args.no_art and config.es in (0, 1) and config.attack_type == "pixel":
                rows.append({**header, **art_row(subject, name, config, images)})
                print(f"  art: {rows[-1]}", flush=True)
            write(args.output, rows)  # after every row: a run cut short keeps what it measured


def print_row(row: Row) -> None:
    seconds = "  ".join(f"{key} {value:.2f}" for key, value in row["seconds"].items())
    profile = "  ".join(f"{part} {us:,.0f}" for part, us in row["per_call_us_ours"].items())
    print(
        f"{row['model']:<9}{row['setting']:<44}fooled {row['fooled']}/{row['images']}  "
        f"ours/model_only {row['ours_over_model_only']:.2f}  "
        f"ours/model_on_device {row['ours_over_model_on_device']:.2f}  "
        f"host-decoded/model_only {row['ours_host_over_model_only']:.2f}  s: {seconds}  "
        f"us a call (ours): {profile}  same results {row['same_results']}",
        flush=True,
    )


def write(output: Path, rows: list[Row]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
