"""Distances between clean and adversarial images, on the 0-255 scale of the attack's
budget ``th``: one implementation for the core (each result's L0, L2 and L-infinity),
the logged metrics (under Dioptra's names, so runs compare with Dioptra's in one UI)
and the pictures (the changed pixels)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

DISTANCES = (
    "l_0_norm",
    "l_1_norm",
    "l_2_norm",
    "l_infinity_norm",
    "cosine_similarity",
    "euclidean_distance",
    "manhattan_distance",
    "wasserstein_distance",
)
FloatArray = npt.NDArray[np.float64]


def changed_pixels(
    originals: npt.NDArray[Any], adversarials: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    """Where a pixel differs in any channel: (..., H, W) from images (..., H, W, C)."""
    changed: npt.NDArray[np.bool_] = np.any(originals != adversarials, axis=-1)
    return changed


def distances(
    original: npt.NDArray[np.generic], adversarial: npt.NDArray[np.generic]
) -> tuple[int, float, float]:
    """(L0 pixels changed, L2, L-infinity) between two (H, W, C) images."""
    delta = adversarial.astype(np.float64) - original.astype(np.float64)
    l0 = int(np.count_nonzero(changed_pixels(original, adversarial)))
    return l0, float(np.sqrt(np.sum(delta**2))), float(np.max(np.abs(delta), initial=0.0))


def image_distances(
    originals: npt.NDArray[Any], adversarials: npt.NDArray[Any]
) -> dict[str, FloatArray]:
    """Each distance (N,) between clean and adversarial images, both (N, H, W, C).

    ``l_0_norm`` counts changed pixels (any channel); ``l_1_norm``, ``l_2_norm`` and
    ``l_infinity_norm`` are norms of the flattened difference, with
    ``manhattan_distance`` and ``euclidean_distance`` the same L1 and L2 under
    Dioptra's other names; ``cosine_similarity`` compares the flattened images (1 for
    identical ones, even all zero); ``wasserstein_distance`` is the 1-Wasserstein
    distance between the two images' distributions of values.
    """
    if originals.shape != adversarials.shape:
        raise ValueError(
            f"expected images of one shape, got {originals.shape} and {adversarials.shape}"
        )
    count = len(originals)
    clean = originals.reshape(count, -1).astype(np.float64)
    adversarial = adversarials.reshape(count, -1).astype(np.float64)
    delta = np.abs(adversarial - clean)
    l1 = delta.sum(axis=1)
    l2 = np.sqrt((delta**2).sum(axis=1))
    norms = np.linalg.norm(clean, axis=1) * np.linalg.norm(adversarial, axis=1)
    identical = np.all(delta == 0, axis=1).astype(np.float64)
    return {
        "l_0_norm": changed_pixels(originals, adversarials)
        .reshape(count, -1)
        .sum(axis=1)
        .astype(np.float64),
        "l_1_norm": l1,
        "l_2_norm": l2,
        "l_infinity_norm": delta.max(axis=1, initial=0.0),
        "cosine_similarity": np.divide(
            (clean * adversarial).sum(axis=1), norms, out=identical, where=norms > 0
        ),
        "euclidean_distance": l2,
        "manhattan_distance": l1,
        # With equal sample counts, W1 is the mean gap between sorted samples.
        "wasserstein_distance": np.abs(np.sort(clean, axis=1) - np.sort(adversarial, axis=1)).mean(
            axis=1
        ),
    }
