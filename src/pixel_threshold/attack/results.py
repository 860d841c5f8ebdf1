"""What the attack returns for each image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Sample:
    """One image to attack.

    ``index`` is the image's position in the attacked set: it seeds the image's own
    random stream, so its result does not depend on the batch it runs in.
    ``image`` is (H, W, C) with integer values in 0-255.
    """

    index: int
    image: npt.NDArray[np.generic]
    label: int


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image.

    ``adversarial`` is (H, W, C) uint8: the adversarial image, or the original when
    the attack failed or did not run. ``attacked`` is False for an image the model
    already got wrong (or, targeted, whose true class is the target): it is written
    unchanged and never counts as a success. Distances are on the 0-255 scale.
    """

    index: int
    label: int
    adversarial: npt.NDArray[np.uint8]
    attacked: bool
    success: bool
    queries: int
    generations: int
    p_true_before: float
    p_true_after: float
    label_before: int
    label_after: int
    l0: int
    l2: float
    linf: float
    min_th: int | None = None
