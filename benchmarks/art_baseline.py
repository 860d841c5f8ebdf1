"""IBM ART 1.20.1 on the same model and images, with its queries counted: its PixelAttack
on a Keras model (`run_art`), or its PixelAttack or ThresholdAttack on any forward pass
as a black box (`run_art_black_box`, no TensorFlow)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack import AttackConfig

if TYPE_CHECKING:
    from benchmarks.cases import Case


def run_art(case: Case, *, th: int, es: int, max_iter: int) -> dict[str, float]:
    """Attack ``case`` with ART; success rate, queries and seconds per image."""
    from art.attacks.evasion import PixelAttack
    from art.estimators.classification import TensorFlowV2Classifier

    class CountingClassifier(TensorFlowV2Classifier):  # type: ignore[misc]
        queries = 0

        def predict(self, x: npt.NDArray[Any], *args: Any, **kwargs: Any) -> Any:
            CountingClassifier.queries += len(x)
            return super().predict(x, *args, **kwargs)

    classifier = CountingClassifier(
        case.model,
        nb_classes=case.classes,
        input_shape=case.images.shape[1:],
        clip_values=(0.0, 255.0),
    )
    attack = PixelAttack(classifier, th=th, es=es, max_iter=max_iter, verbose=False)
    start = time.perf_counter()
    with warnings.catch_warnings():  # ART hands pycma arrays where it wants scalars
        warnings.simplefilter("ignore")
        adversarial = attack.generate(case.images.astype(np.float32), y=case.labels)
    seconds = time.perf_counter() - start
    queries = CountingClassifier.queries
    predicted = np.argmax(case.model(adversarial.astype(np.float32)).numpy(), axis=1)
    count = len(case.images)
    return {
        "success_rate": float(np.mean(predicted != case.labels)),
        "queries_per_image": queries / count,
        "seconds_per_image": seconds / count,
    }


def run_art_black_box(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    config: AttackConfig,
    forward: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]],
    *,
    classes: int = 1000,
) -> dict[str, float]:
    """ART's attack of ``config``'s kind (PixelAttack or ThresholdAttack, its ``th``, ``es``
    and ``max_iter``) on ``forward`` (float32 (B, H, W, C) 0-255 pixels -> (B, classes)
    scores) as a black box; success rate, queries and seconds per image."""
    from art.attacks.evasion import PixelAttack, ThresholdAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    queries = 0

    def counted(pixels: npt.NDArray[Any]) -> npt.NDArray[Any]:
        nonlocal queries
        queries += len(pixels)
        return forward(pixels.astype(np.float32))

    classifier = BlackBoxClassifierNeuralNetwork(
        counted, images.shape[1:], classes, channels_first=False, clip_values=(0.0, 255.0)
    )
    kind = PixelAttack if config.attack_type == "pixel" else ThresholdAttack
    attack = kind(classifier, th=config.th, es=config.es, max_iter=config.max_iter, verbose=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adversarial = attack.generate(images.astype(np.float32), y=labels)
    seconds = time.perf_counter() - start
    predicted = np.argmax(forward(adversarial.astype(np.float32)), axis=1)
    return {
        "success_rate": float(np.mean(predicted != labels)),
        "queries_per_image": queries / len(images),
        "seconds_per_image": seconds / len(images),
    }
