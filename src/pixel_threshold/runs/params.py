"""Every entry point's parameters, with their defaults and help: the one source for both.

The click options of ``entrypoints/*.py`` are generated from these dataclasses, and
a test checks that ``MLproject`` declares the same names and defaults, so the command
line, ``mlflow run`` and in-process calls (``main``) cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pixel_threshold.attack import strategies
from pixel_threshold.attack.losses import default_loss


def _param(default: Any, text: str, *, alias: str = "") -> Any:
    """A parameter's default and help; ``alias``: another option name it answers to
    (``--data`` for train's and main's ``--dataset``, ``--dataset`` for attack's
    ``--data``), so the name a user tried first on another step works too."""
    return field(default=default, metadata={"help": text, "alias": alias})


@dataclass(frozen=True, kw_only=True)
class TrainParams:
    """Train a classifier; logs the model as ``model`` (Keras flavour, with signature)."""

    dataset: str = _param(
        "digits",
        "built-in dataset name (digits, imagenet-sample) or a folder of class folders",
        alias="data",
    )
    architecture: str = _param(
        "small_cnn",
        "model architecture: small_cnn, or an ImageNet one (resnet50, vgg16, mobilenet_v2, "
        "efficientnet_b0, efficientnet_lite0)",
    )
    weights: str = _param(
        "none",
        "initial weights: none; a .weights.h5 file (small_cnn); imagenet or a weight file "
        "(.h5; .pth for efficientnet_lite0) for an ImageNet architecture",
    )
    epochs: int = _param(10, "training epochs (0: wrap pretrained weights, no training)")
    batch_size: int = _param(64, "training batch size")
    learning_rate: float = _param(0.001, "Adam learning rate")
    seed: int = _param(0, "seed for weight initialisation and shuffling")
    register_model_name: str = _param("", "register the model under this name ('' = do not)")


@dataclass(frozen=True, kw_only=True)
class ModelCall:
    """How a model is called: what it expects of its input, what it returns, where it
    runs (the parameters of `attack`, and of `main` for a model of its own)."""

    input_range: str = _param("0,255", "what the model expects: 0,255 / 0,1 / -1,1")
    mean: str = _param(
        "", "per-channel mean subtracted after input_range, e.g. 0.485,0.456,0.406 ('' = none)"
    )
    std: str = _param("", "per-channel std divided by after the mean, e.g. 0.229,0.224,0.225")
    layout: str = _param(
        "",
        "the model's input layout: NHWC, NCHW or flat (H, W, C order) ('' = from its "
        "signature, else its kind's: NCHW for pytorch, flat for sklearn, NHWC otherwise)",
    )
    dtype: str = _param("float32", "the model's input type: float32, float64, float16 or uint8")
    outputs: str = _param(
        "",
        "what the model returns: probabilities, logits or log_probabilities ('' = detected "
        "on the first images: rows in [0, 1] summing to 1, rows <= 0 whose exponentials "
        "sum to 1, else logits)",
    )
    device: str = _param("cpu", "where a pytorch or onnx model runs: cpu, cuda, cuda:1, ...")


@dataclass(frozen=True, kw_only=True)
class AttackParams(ModelCall):
    """Attack a classifier."""

    model: str = _param(
        "",
        "runs:/..., models:/name/version, models:/name@alias, a folder with an MLmodel file "
        "(keras, pytorch, onnx, sklearn or pyfunc), a .keras, .onnx or TorchScript .pt file, "
        "or an http(s):// scoring URL ('' = the model of the latest finished train run of "
        "the experiment)",
    )
    data: str = _param(
        "digits",
        "built-in dataset name (digits, imagenet-sample: its test split) or a folder of "
        "class folders",
        alias="dataset",
    )
    resize: str = _param(
        "crop",
        "how a folder's image of another size than the model's is made its size: crop "
        "(scale to cover it, keep the centre: no distortion), stretch (scale each side) or "
        "refuse (stop, naming the image)",
    )
    attack_type: str = _param("pixel", "pixel (L0: change at most th pixels) or threshold (L-inf)")
    th: int = _param(
        1,
        "pixels to change (pixel) or largest change on the 0-255 scale (threshold); -1 = "
        "each image's smallest th in 1..th_max",
    )
    th_max: int = _param(
        0,
        "with th=-1, the largest th tried (0 = the whole range: 255 for threshold, "
        "min(255, H*W) for pixel); ignored otherwise",
    )
    es: int = _param(1, strategies.help_text())
    loss: str = _param(
        "",
        "what the search minimises: margin (log p(true) - max other log p; does not go "
        "flat when p(true) rounds to 1.0), probability (p(true), the paper's) or "
        "cross_entropy (log p(true); targeted -log p(target), as Sparse-RS and Square) "
        "('' = margin, or cross_entropy for a targeted run)",
    )
    max_iter: int = _param(
        0,
        "steps (generations) per image, each of popsize queries (0 = the strategy's "
        f"default: {strategies.defaults_text('max_iter')})",
    )
    popsize: int = _param(
        0,
        "candidates per step and image (0 = the strategy's default: "
        f"{strategies.defaults_text('popsize')}); a search costs at most max_iter x popsize "
        "queries, and a success one more (scored alone to confirm it)",
    )
    target: int = _param(-1, "class to reach (-1 = untargeted)")
    limit: int = _param(100, "attack the first `limit` images")
    batch_size: int = _param(400, "images per model call")
    seed: int = _param(0, "seed of the search")
    resume: str = _param(
        "",
        "id of an interrupted attack run to finish: reuses the images it logged "
        "(same parameters required; '' = a new attack)",
    )
    # Sharding over a Ray cluster (steps/sharding.py): where the images are attacked,
    # never what comes out.
    ray_address: str = _param(
        "",
        "Ray cluster to shard the attack over: auto or host:port ('' = attack here); "
        "needs pip install '.[ray]'",
    )
    shard_size: int = _param(10, "images per Ray task when ray_address is set")
    max_hours: float = _param(
        24.0,
        "refuse an attack whose budget would take longer than this at the rate the model "
        "answers its first calls (0 = no limit)",
    )

    @property
    def target_class(self) -> int | None:
        """``target`` as the core takes it: None for an untargeted run."""
        return None if self.target < 0 else self.target

    @property
    def resolved_loss(self) -> str:
        """The loss the run minimises: ``loss``, or when empty its run's default
        (`losses.default_loss`: the margin, cross-entropy when targeted)."""
        return self.loss or default_loss(self.target_class)


@dataclass(frozen=True, kw_only=True)
class EvaluateParams:
    """Evaluate a model on an attack run's adv_testing.tar.gz and on the clean images."""

    attack_run_id: str = _param("", "attack run to evaluate ('' = the latest finished one)")
    model: str = _param("", "model to evaluate ('' = the attacked model)")


@dataclass(frozen=True, kw_only=True)
class MainParams(ModelCall):
    """Train once, attack every (attack type, th, es), evaluate each: child runs of one
    parent run."""

    th_values: str = _param("1,3,5", "comma-separated th values (-1 = each image's smallest th)")
    es_values: str = _param(
        "0,1",
        "comma-separated es values ("
        + ", ".join(f"{record.es} = {record.label}" for record in strategies.STRATEGIES.values())
        + ")",
    )
    attack_type: str = _param(
        "pixel", "pixel, threshold, or both comma-separated (pixel,threshold)"
    )
    th_max: int = _param(0, "with a th of -1, the largest th tried (0 = the whole range)")
    limit: int = _param(100, "images to attack in each attack run")
    epochs: int = _param(10, "training epochs")
    seed: int = _param(0, "seed of training and of every attack")
    max_iter: int = _param(
        100,
        "generations per image in every attack (a strategy whose step is one query gets "
        "the same query budget: max_iter x popsize steps of 1)",
    )
    popsize: int = _param(
        400, "candidates per generation in every attack (1 for a strategy of one-query steps)"
    )
    loss: str = _param(
        "", "every attack's loss: margin, probability or cross_entropy ('' = margin)"
    )
    dataset: str = _param("digits", "train's dataset, and every attack's data", alias="data")
    architecture: str = _param("small_cnn", "train's architecture")
    weights: str = _param("none", "train's initial weights (epochs=0 wraps pretrained ones)")
    model: str = _param(
        "",
        "attack this model instead of training one (any kind attack takes; '' = train); "
        "the parameters below say how to call it, as attack's do",
    )


@dataclass(frozen=True, kw_only=True)
class CompareParams:
    """Compare attack runs."""

    experiment_name: str = _param(
        "", "experiment whose finished attack runs to compare ('' = this run's experiment)"
    )
    run_ids: str = _param(
        "", "comma-separated attack run ids to compare instead ('' = every finished one)"
    )


@dataclass(frozen=True, kw_only=True)
class ReportParams:
    """Write one assessment of a model on one data set, from its attack runs, as a page
    (HTML and Markdown)."""

    run_ids: str = _param(
        "",
        "comma-separated ids of attack runs of one model on one data set ('' = the latest "
        "finished attack run, and the latest of the other attack type on its model and data)",
    )
    experiment_name: str = _param(
        "", "with no run_ids, the experiment to take them from ('' = this run's experiment)"
    )
