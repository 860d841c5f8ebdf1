"""An attack's per-image results as ``adv_testing/manifest.csv`` columns, and back.

The manifest holds every field of ``ImageResult`` but the adversarial image (its
PNG) and the core's own distances (recomputed from the images), written so that
they read back exactly: floats as their shortest round-trip text. A ``th=-1`` run's
manifest also holds ``min_th``, empty for an image not fooled within ``th_max``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pixel_threshold.artifacts.tarball import AdvTesting
from pixel_threshold.attack import ImageResult
from pixel_threshold.attack.distances import DISTANCES, FloatArray, distances

INTEGERS = ("index", "queries", "generations", "label_before", "label_after")
FLOATS = ("p_true_before", "p_true_after")
BOOLEANS = ("attacked", "success")
MIN_TH = "min_th"


def columns(
    results: Sequence[ImageResult],
    sources: Sequence[str],
    image_distances: dict[str, FloatArray],
    *,
    smallest: bool = False,
) -> dict[str, list[Any]]:
    """Manifest columns for ``results`` (n,) from images ``sources`` (n,), with the
    Dioptra distances (each (n,)), and ``min_th`` if ``smallest`` (a ``th=-1`` run);
    ``file``, ``label`` and ``label_name`` come first from the tarball writer."""
    smallest_th = (
        {MIN_TH: ["" if result.min_th is None else result.min_th for result in results]}
        if smallest
        else {}
    )
    return {
        "index": [result.index for result in results],
        "source": list(sources),
        "attacked": [result.attacked for result in results],
        "success": [result.success for result in results],
        "queries": [result.queries for result in results],
        "generations": [result.generations for result in results],
        "label_before": [result.label_before for result in results],
        "label_after": [result.label_after for result in results],
        "p_true_before": [result.p_true_before for result in results],
        "p_true_after": [result.p_true_after for result in results],
        **smallest_th,
        **{name: image_distances[name].tolist() for name in DISTANCES},
    }


def results(adv: AdvTesting, originals: npt.NDArray[np.uint8]) -> list[ImageResult]:
    """The results an adversarial set records, one per manifest row; ``originals``
    (N, H, W, C) are the clean images of the attacked set, by ``index``. ``min_th`` is
    None without the column (a run at a fixed th)."""
    missing = {*INTEGERS, *FLOATS, *BOOLEANS} - set(adv.manifest)
    if missing:
        raise ValueError(f"expected manifest columns {sorted(missing)}, found none")
    integers = {name: adv.column(name) for name in INTEGERS}
    labels = adv.labels
    smallest_th = [_min_th(text) for text in adv.manifest.get(MIN_TH, [""] * len(labels))]
    restored = []
    for row, adversarial in enumerate(adv.images):
        index = int(integers["index"][row])
        if not 0 <= index < len(originals):
            raise ValueError(f"expected indices in [0, {len(originals)}), got index={index}")
        l0, l2, linf = distances(originals[index], adversarial)
        restored.append(
            ImageResult(
                index=index,
                label=int(labels[row]),
                adversarial=adversarial,
                attacked=_boolean(adv.manifest["attacked"][row]),
                success=_boolean(adv.manifest["success"][row]),
                queries=int(integers["queries"][row]),
                generations=int(integers["generations"][row]),
                p_true_before=float(adv.manifest["p_true_before"][row]),
                p_true_after=float(adv.manifest["p_true_after"][row]),
                label_before=int(integers["label_before"][row]),
                label_after=int(integers["label_after"][row]),
                l0=l0,
                l2=l2,
                linf=linf,
                min_th=smallest_th[row],
            )
        )
    return restored


def _min_th(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"expected an integer or nothing in the manifest's min_th, got {text!r}")
    return int(text)


def _boolean(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"expected True or False in the manifest, got {text!r}")
    return text == "True"
