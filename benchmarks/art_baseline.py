"""IBM ART 1.20.1's PixelAttack on the same model and images, with its queries counted."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

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
