"""Run names that say what ran, so the MLflow runs table reads without opening runs:
``train small_cnn digits``, ``attack pixel th=3 es=2 random search 10000x1
digits_small_cnn`` (``th=-1 (smallest<=64)`` for a ``th=-1`` run, th_max as resolved),
``evaluate <attack run name>``, ``compare 6 runs``,
``main pixel th=1,3,5 es=0,1``, ``main pixel,threshold th=-1 es=1 th_max=20``.

A step names its own run once it knows the name (the attack once its model is
resolved), unless the run already has a name a person gave it (``mlflow run
--run-name NAME``, ``mlflow.start_run(run_name=...)``): only names of MLflow's own
making (``gentle-owl-123``, `generated_names.is_generated`) are replaced.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from pixel_threshold.attack.config import SMALLEST_TH, resolved_budget
from pixel_threshold.attack.losses import default_loss
from pixel_threshold.attack.strategies import strategy_name
from pixel_threshold.runs import generated_names, records, tracking
from pixel_threshold.runs.params import AttackParams, MainParams, TrainParams


def name_run(name: str) -> None:
    """Name the active run ``name`` unless it has a name given by a person."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("expected an active MLflow run to name, found none")
    current = mlflow.get_run(run.info.run_id).info.run_name
    if not current or generated_names.is_generated(current):
        mlflow.set_tag(tracking.RUN_NAME_TAG, name)


def dataset_name(dataset: str) -> str:
    """A built-in dataset's name, or an image folder's own name (``/data/imagenet/`` ->
    ``imagenet``)."""
    return Path(dataset.rstrip("/")).name or dataset


def model_name(model_uri: str) -> str:
    """A short name for a model: ``<dataset>_<architecture>`` of the train run that
    logged it, else a registered model's ``name/version`` or ``name@alias``, else a
    file's stem."""
    if model_uri.startswith("models:/"):
        return model_uri.removeprefix("models:/")
    run_id = tracking.model_run_id(model_uri)
    if run_id is None:
        return Path(model_uri).stem
    train_run = records.train_run_or_none(run_id)
    if train_run is None:
        return f"run {run_id[:8]}"
    return f"{dataset_name(train_run.params.dataset)}_{train_run.params.architecture}"


def train_run_name(params: TrainParams) -> str:
    return f"train {params.architecture} {dataset_name(params.dataset)}"


def th_name(th: int, th_max: int) -> str:
    """``th=3``, or for ``th=-1`` with ``th_max`` as resolved ``th=-1 (smallest<=64)``."""
    return f"th={th} (smallest<={th_max})" if th == SMALLEST_TH else f"th={th}"


def attack_run_name(params: AttackParams, model: str, *, th_max: int) -> str:
    """``attack <type> th=<th> es=<es> <strategy> <max_iter>x<popsize> <model>``, the
    budget as resolved (0: the strategy's default; ``th_max``, that of a ``th=-1`` run,
    as `th_name` writes it), with ``loss=probability`` when not the default loss,
    ``target=<t>`` when targeted and the data when it is not the model's own dataset."""
    max_iter, popsize = resolved_budget(params.es, params.max_iter, params.popsize)
    strategy = strategy_name(params.es)
    name = (
        f"attack {params.attack_type} {th_name(params.th, th_max)} es={params.es} {strategy} "
        f"{max_iter}x{popsize} {model}"
    )
    if params.loss and params.loss != default_loss(params.target_class):
        name += f" loss={params.loss}"
    if params.target >= 0:
        name += f" target={params.target}"
    data = dataset_name(params.data)
    if not model.startswith(f"{data}_"):
        name += f" on {data}"
    return name


def main_run_name(params: MainParams) -> str:
    """``main <attack types> th=<th_values> es=<es_values>``, with ``th_max=<th_max>``
    when a th of -1 has one other than the whole range."""
    name = f"main {params.attack_type} th={params.th_values} es={params.es_values}"
    smallest = str(SMALLEST_TH) in (part.strip() for part in params.th_values.split(","))
    if smallest and params.th_max:
        name += f" th_max={params.th_max}"
    return name
