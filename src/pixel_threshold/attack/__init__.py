"""The attack core: encodings, losses, strategies (CMA-ES, DE, random search) and the
batched search.

Imports numpy and threadpoolctl only (CMA-ES's linear algebra runs on one BLAS thread,
`cmaes`): the model is a callable handed in, so the core runs, tests and ships
to a worker without TensorFlow, MLflow or files.
"""

from pixel_threshold.attack.cmaes import CMAES, default_popsize
from pixel_threshold.attack.config import (
    SMALLEST_TH,
    AttackConfig,
    resolved_budget,
    resolved_th_max,
)
from pixel_threshold.attack.de import DifferentialEvolution
from pixel_threshold.attack.distances import distances
from pixel_threshold.attack.encodings import (
    ATTACK_TYPES,
    PixelEncoding,
    ThresholdEncoding,
    make_encoding,
)
from pixel_threshold.attack.losses import LOSSES
from pixel_threshold.attack.results import ImageResult, Sample
from pixel_threshold.attack.search import PixelThresholdAttack
from pixel_threshold.attack.strategies import STRATEGIES, StrategyRecord
from pixel_threshold.attack.strategy import Strategy
from pixel_threshold.attack.types import Predict

__all__ = [
    "ATTACK_TYPES",
    "CMAES",
    "LOSSES",
    "SMALLEST_TH",
    "STRATEGIES",
    "AttackConfig",
    "DifferentialEvolution",
    "ImageResult",
    "PixelEncoding",
    "PixelThresholdAttack",
    "Predict",
    "Sample",
    "Strategy",
    "StrategyRecord",
    "ThresholdEncoding",
    "default_popsize",
    "distances",
    "make_encoding",
    "resolved_budget",
    "resolved_th_max",
]
