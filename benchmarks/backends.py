"""`make bench-backends`: every kind of model at the speed of its own runtime.

For each backend, a model trained on the digits (the Keras small CNN; a scikit-learn MLP
in scikit-learn, in ONNX Runtime and behind ``mlflow models serve``; a custom pyfunc; a
PyTorch CNN as TorchScript) is attacked through `load_classifier`, as the attack step
does, and timed against ``model_only``: the same backend's forward pass replaying the
same calls (sizes and count) in the same run. Then the HTTP endpoint's queries per
second at batch 1, 64 and 400 against the in-process MLP's. Last, EfficientNet-Lite0 (ImageNet
weights) in Keras/TensorFlow against the same network exported to ONNX (Keras' own ONNX
export, through tf2onnx: the ``bench`` extra) in ONNX Runtime, on the imagenet-sample
photos it gets right: queries per second each, at the same attack.

Writes JSON rows to ``--output`` (untracked by default) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import numpy.typing as npt

from benchmarks.strength import strength_row
from benchmarks.timing import Row, median_seconds
from pixel_threshold.attack import AttackConfig
from pixel_threshold.data.datasets import Split, digits, imagenet_sample
from pixel_threshold.models import loading, scoring
from pixel_threshold.models.options import ModelOptions
from tests import model_kinds
from tests.tracking_store import model_server

OUTPUT = Path("benchmarks/output/backends.json")
SETTINGS = {
    "es=2 pixel th=3, 1,000 queries": AttackConfig(th=3, es=2, max_iter=1_000, popsize=1),
    "es=1 pixel th=3, 10 x 100": AttackConfig(th=3, es=1, max_iter=10, popsize=100),
}


@dataclass(frozen=True)
class Correct:
    """The first test images a model classifies correctly."""

    name: str
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]


def correct(
    name: str, classifier: scoring.Classifier, count: int, split: Split | None = None
) -> Correct:
    split = split or digits()
    predicted = scoring.predicted_labels(classifier, split.test_images)
    keep = np.flatnonzero(predicted == split.test_labels)[:count]
    return Correct(name, split.test_images[keep], split.test_labels[keep])


def models(folder: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Each backend's model URI and the parameters it is attacked with."""
    mlp = model_kinds.digits_mlp()
    keras_file = folder / "digits_cnn.keras"
    model_kinds.digits_keras_cnn().save(keras_file)
    scaled = {"input_range": "0,1"}
    return {
        "keras": (str(keras_file), {}),
        "sklearn": (model_kinds.log_sklearn(mlp), scaled),
        "onnx": (model_kinds.save_onnx(mlp, folder), scaled),
        "pyfunc": (model_kinds.log_pyfunc(mlp), scaled),
        "pytorch": (
            model_kinds.save_torchscript(model_kinds.digits_torch_cnn(), folder),
            {"input_range": "0,1", "mean": "0.5", "std": "0.25"},
        ),
    }


def backend_rows(uri: str, kind: str, options: dict[str, str], images: int) -> list[Row]:
    classifier = loading.load_classifier(uri, ModelOptions(batch_size=400, **options))
    case = correct(kind, classifier, images)
    outputs, _ = scoring.probed(classifier, case.images, uri=uri, outputs="")
    rows = []
    for setting, config in SETTINGS.items():
        fitted = AttackConfig(**{**config.__dict__, "outputs": outputs})
        rows.append({"backend": kind, **strength_row(case, classifier, fitted, setting)})
    return rows


def http_rows(uri: str, options: dict[str, str]) -> list[Row]:
    """Queries per second of the served MLP at batch 1, 64 and 400, against the same
    MLP in-process."""
    pixels = digits().test_images[:400].astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as folder, model_server(uri, Path(folder) / "log") as up:
        for batch in (1, 64, 400):
            for name, model in (("http", up.url), ("in-process", uri)):
                classifier = loading.load_classifier(
                    model, ModelOptions(batch_size=batch, layout="flat", **options)
                )
                seconds = median_seconds(lambda: classifier(pixels[:batch]), 9)  # noqa: B023
                rows.append(
                    {"endpoint": name, "batch": batch, "queries_per_second": batch / seconds}
                )
    return rows


LITE0_SETTING = AttackConfig(attack_type="threshold", th=4, es=2, max_iter=100, popsize=1)


def lite0_rows(folder: Path, images: int) -> list[Row]:
    """Lite0 in Keras/TensorFlow and in ONNX Runtime, the same attack on each."""
    from pixel_threshold.models.imagenet import lite0

    model = lite0.pretrained()
    keras_file, onnx_file = folder / "lite0.keras", folder / "lite0.onnx"
    model.save(keras_file)
    model(np.zeros((1, *model.input_shape[1:]), dtype=np.float32))  # export needs a call
    model.export(str(onnx_file), format="onnx")
    rows = []
    for kind, uri in (("keras", keras_file), ("onnx", onnx_file)):
        classifier = loading.load_classifier(str(uri), ModelOptions(batch_size=64))
        case = correct(f"lite0 {kind}", classifier, images, imagenet_sample())
        outputs, _ = scoring.probed(classifier, case.images, uri=str(uri), outputs="")
        config = AttackConfig(**{**LITE0_SETTING.__dict__, "batch_size": 64, "outputs": outputs})
        row = strength_row(case, classifier, config, "es=2 threshold th=4, 100 queries")
        queries = row["queries_per_image"] * row["images"]
        rows.append(
            {"backend": f"lite0 {kind}", **row, "queries_per_second": queries / row["seconds"]}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100, help="0 skips the digits models")
    parser.add_argument("--lite0-images", type=int, default=23, help="0 skips Lite0")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        zoo = models(Path(folder)) if args.images else {}
        for kind, (uri, options) in zoo.items():
            for row in backend_rows(uri, kind, options, args.images):
                rows.append(row)
                print(
                    f"{kind:<9}{row['setting']:<34}fooled {row['fooled']}/{row['images']}  "
                    f"{row['seconds']:.2f} s, model_only {row['model_only_seconds']:.2f} s, "
                    f"ours/model_only {row['ours_over_model_only']:.2f}",
                    flush=True,
                )
        for row in http_rows(*zoo["sklearn"]) if zoo else []:
            rows.append(row)
            print(
                f"{row['endpoint']:<11}batch {row['batch']:<4}{row['queries_per_second']:,.0f} q/s"
            )
        for row in lite0_rows(Path(folder), args.lite0_images) if args.lite0_images else []:
            rows.append(row)
            print(
                f"{row['backend']:<12}fooled {row['fooled']}/{row['images']}  "
                f"{row['queries_per_second']:.0f} q/s, ours/model_only "
                f"{row['ours_over_model_only']:.2f}",
                flush=True,
            )
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
