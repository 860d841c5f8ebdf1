"""The batched attack: many images advance together, one step at a time.

At a fixed th, one `level_search.LevelSearch` holds the images in flight: every step,
their populations are decoded into one float32 buffer a chunk of ``batch_size`` rows at
a time (memory is bounded by the batch, not by the image count or ``D``) and scored in
as few model calls as ``batch_size`` allows (`model_calls`). A finished image's slot is
refilled from the input stream, so the model keeps seeing full batches. With ``th=-1``,
`smallest.SmallestBudget` runs a search per level and a tightening, all sharing calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pixel_threshold.attack.config import SMALLEST_TH, AttackConfig
from pixel_threshold.attack.level_search import LevelSearch, images_in_flight, intake
from pixel_threshold.attack.model_calls import ModelCalls
from pixel_threshold.attack.results import ImageResult, Sample
from pixel_threshold.attack.smallest import SmallestBudget
from pixel_threshold.attack.types import Predict


class PixelThresholdAttack:
    """The Pixel (L0) and Threshold (L-infinity) black-box attacks of Kotyan & Vargas,
    "Adversarial Robustness Assessment: Why both L0 and L-infinity Attacks Are
    Necessary" (arXiv 1906.06026).

    Made with an `AttackConfig` (``PixelThresholdAttack(AttackConfig(th=1, es=1))``), it
    attacks `Sample`s with `run`, handed the model as ``predict``: a callable from
    float32 (B, H, W, C) pixels in 0-255 to probabilities (B, K), ``B <= batch_size``.
    """

    def __init__(self, config: AttackConfig) -> None:
        self.config = config

    def run(self, samples: Iterable[Sample], predict: Predict) -> Iterator[ImageResult]:
        """Attack every sample; yield each image's result as soon as it is final.

        Results come in completion order, not input order; ``result.index`` says which.
        With ``th=-1``, each image's smallest th (`smallest.SmallestBudget`).
        """
        calls = ModelCalls(predict, self.config.batch_size)
        if self.config.th == SMALLEST_TH:
            return SmallestBudget(self.config, calls).run(samples)
        return self._fixed(samples, calls)

    def _fixed(self, samples: Iterable[Sample], calls: ModelCalls) -> Iterator[ImageResult]:
        """The attack at the config's th."""
        jobs = intake(samples, calls, self.config)
        search: LevelSearch | None = None
        while True:
            while search is None or search.has_room:
                job = next(jobs, None)
                if job is None:
                    break
                if isinstance(job, ImageResult):
                    yield job
                    continue
                if search is None:
                    search = LevelSearch(self.config, job.shape, images_in_flight(self.config))
                search.add(job)
            if search is None or not search.busy:
                return
            proposal, claims = search.propose(), search.claims()
            probs, alone = calls.score([proposal, claims], search.encoding.shape)
            yield from search.settle_claims(claims, alone)
            yield from search.settle(proposal, probs)
