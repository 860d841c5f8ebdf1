"""The attack core on an accelerator: ours vs ART's PixelAttack vs the forward pass alone.

The core takes any callable, so this benchmark needs no TensorFlow: it runs Keras 3
on whichever backend ``KERAS_BACKEND`` names (``jax`` on a GPU machine whose image has
JAX but no TensorFlow; ``tensorflow`` here). The model is MobileNetV2 at 224x224 with
random weights (speed only), its rescaling inside, softmax out; the images are
scikit-image's photos, labelled with the model's own predictions. Every row attacks
the same images with the same compiled forward pass, in one run::

    KERAS_BACKEND=jax python -m benchmarks.accelerator --output benchmarks/output/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt

from benchmarks.art_baseline import run_art_black_box
from benchmarks.photos import SHAPE, photos
from benchmarks.timing import Row, median_seconds, run_model_only, run_ours, trace_padded_shapes
from pixel_threshold.attack import AttackConfig, make_encoding

Forward = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


def mobilenet_v2() -> keras.Model:
    """MobileNetV2 (random weights) taking raw 0-255 pixels, returning probabilities."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=SHAPE)
    return keras.Model(inputs, backbone(scaled))


def compiled_forward(model: keras.Model, batch_size: int, *, warm: bool = True) -> Forward:
    """The model compiled once per padded shape (powers of two up to ``batch_size``),
    called in chunks of ``batch_size`` rows; (B, 224, 224, 3) -> (B, 1000)."""
    if keras.backend.backend() == "jax":
        import jax

        call = jax.jit(lambda pixels: model(pixels, training=False))
    else:
        import tensorflow as tf

        call = tf.function(lambda pixels: model(pixels, training=False))

    def forward(pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        outputs = []
        for start in range(0, len(pixels), batch_size):
            chunk = pixels[start : start + batch_size]
            count = len(chunk)
            rows = min(batch_size, 1 << (count - 1).bit_length())
            if rows > count:  # as CompiledClassifier: a copy only to pad
                chunk = np.concatenate([chunk, np.zeros((rows - count, *SHAPE), np.float32)])
            outputs.append(np.asarray(call(chunk))[:count])
        return np.concatenate(outputs).astype(np.float32, copy=False)

    trace_padded_shapes(forward, SHAPE, batch_size, smallest=1 if warm else batch_size)
    return forward


def cost_split(model: keras.Model, forward: Forward, batch_size: int) -> Row:
    """Median seconds per call of ``batch_size`` rows: the forward pass from host memory
    (what the attack pays), the same on inputs already on the device (JAX only), and
    the pixel encoding's decoding of that many th=1 candidates on the host."""
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (batch_size, *SHAPE)).astype(np.float32)
    split: Row = {
        "batch_size": batch_size,
        "forward_from_host": median_seconds(lambda: forward(batch), 5),
    }
    if keras.backend.backend() == "jax":
        import jax

        call = jax.jit(lambda pixels: model(pixels, training=False))
        on_device = jax.device_put(batch)
        call(on_device).block_until_ready()
        split["forward_on_device"] = median_seconds(lambda: call(on_device).block_until_ready(), 5)
    encoding = make_encoding("pixel", 1, SHAPE)
    genes = rng.uniform(encoding.lower, encoding.upper, (batch_size, encoding.dimension))
    owners = np.zeros(batch_size, np.intp)
    split["decode_th1"] = median_seconds(
        lambda: encoding.decode_into(batch, batch[:1].copy(), owners, genes), 5
    )
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--max-iter", type=int, default=5, help="generations per image")
    parser.add_argument("--batch-size", type=int, default=2400, help="rows per model call")
    parser.add_argument("--no-art", action="store_true")
    parser.add_argument("--cost-split", action="store_true", help="only time where a call goes")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    model = mobilenet_v2()
    forward = compiled_forward(model, args.batch_size, warm=not args.cost_split)
    if args.cost_split:
        print(json.dumps(cost_split(model, forward, args.batch_size)))
        return
    images = photos(args.images)
    labels = np.argmax(forward(images.astype(np.float32)), axis=1).astype(np.int64)
    common = {"backend": keras.backend.backend(), "device": os.environ.get("BENCH_DEVICE", "")}
    rows: list[Row] = []
    for th in (1, 3):
        for es in (0, 1):
            config = AttackConfig(
                th=th, es=es, max_iter=args.max_iter, popsize=400, batch_size=args.batch_size
            )
            key = {**common, "th": th, "es": es, "images": len(images), "popsize": 400}
            key |= {"max_iter": args.max_iter, "batch_size": args.batch_size}
            ours = run_ours(images, labels, config, forward)
            model_only = run_model_only(
                forward, SHAPE, args.batch_size, ours["queries_per_image"], 5
            )
            rows += [{**key, "tool": "ours", **ours}, {**key, "tool": "model_only", **model_only}]
            ratio = ours["seconds_per_image"] / model_only["seconds_per_image"]
            rate = ours["queries_per_image"] / ours["seconds_per_image"]
            line = f"th={th} es={es} ours/model_only={ratio:.2f} queries/s={rate:.0f}"
            if not args.no_art and es == 1:
                art = run_art_black_box(images, labels, config, forward)
                rows.append({**key, "tool": "art", "popsize": "art-default", **art})
                per_query = (art["seconds_per_image"] / art["queries_per_image"]) / (
                    ours["seconds_per_image"] / ours["queries_per_image"]
                )
                line += f" art/ours per query={per_query:.1f}"
            print(line, flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
