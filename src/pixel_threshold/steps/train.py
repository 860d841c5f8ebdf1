"""Step ``train``: fit a classifier on a dataset's train split (or wrap a pretrained one
with ``epochs=0``), log and register it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np

from pixel_threshold.data import datasets, imagenet
from pixel_threshold.models import classifier, loading, registry, scoring, training
from pixel_threshold.runs import naming, outcome, tracking
from pixel_threshold.runs.params import TrainParams
from pixel_threshold.steps import plan

if TYPE_CHECKING:
    import keras

CLASS_NAMES = "class_names.json"


def _log_epoch(epoch: int, logs: dict[str, float]) -> None:
    """Log Keras' per-epoch metrics (loss, accuracy, val_loss, val_accuracy) to MLflow."""
    mlflow.log_metrics({name: float(value) for name, value in logs.items()}, step=epoch)


def run_train(params: TrainParams) -> str:
    """Train, evaluate on the test split, log the model as ``model``; return the run id.

    The test split is the validation data of the per-epoch metrics; ``test_accuracy``
    and ``test_loss`` are the final model's, from the last epoch. With ``epochs=0``
    (pretrained ``weights`` only) the model is not trained: it is evaluated as it is,
    on the test split of a built-in dataset or on every image of a folder.
    """
    with tracking.step_run("train") as run:
        tracking.log_params(params)
        naming.name_run(naming.train_run_name(params))
        plan.check_train(params)
        registry.check_build(params.architecture, params.weights)
        if params.epochs == 0:
            model, evaluated = _wrap(params)
        else:
            model, evaluated = _fit(params)
        mlflow.log_dict(class_names_document(evaluated.class_names), CLASS_NAMES)
        loading.log_model(
            model,
            name=tracking.MODEL_ARTIFACT,
            example=evaluated.images[:2],
            registered_model_name=params.register_model_name or None,
        )
        run_id: str = run.info.run_id
    outcome.print_outcome(run_id)
    return run_id


def _fit(params: TrainParams) -> tuple[keras.Model, datasets.ImageSet]:
    """Train on the train split; return the model and the test split it was scored on."""
    pretrained = registry.pretrained_input(params.architecture, params.weights)
    split = datasets.training_split(params.dataset, None if pretrained is None else pretrained[0])
    tracking.log_skipped_images(split.skipped)
    if not len(split.train_images):
        raise ValueError(
            f"expected training images in dataset={params.dataset!r}, got none (it is for "
            "evaluating and attacking: wrap a pretrained model with epochs=0)"
        )
    test = split.test_set()
    if pretrained is not None:
        _check_pretrained_data(params, test, pretrained)
    model = _build(params, test)
    history = training.train_classifier(
        model,
        split.train_images,
        split.train_labels,
        epochs=params.epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        seed=params.seed,
        validation=(split.test_images, split.test_labels),
        on_epoch_end=_log_epoch,
    )
    final = {name: values[-1] for name, values in history.history.items()}
    mlflow.log_metrics({"test_accuracy": final["val_accuracy"], "test_loss": final["val_loss"]})
    return model, test


def _wrap(params: TrainParams) -> tuple[keras.Model, datasets.ImageSet]:
    """The pretrained model, evaluated as it is (``test_accuracy``, ``test_loss``,
    ``test_images``) on the test split of a built-in dataset or a whole folder."""
    pretrained = registry.pretrained_input(params.architecture, params.weights)
    if pretrained is None:
        split = datasets.training_split(params.dataset)
        evaluated = split.test_set()
        skipped = split.skipped
    else:
        evaluated = datasets.attack_set(params.dataset, pretrained[0], limit=None, param="dataset")
        skipped = evaluated.skipped
        _check_pretrained_data(params, evaluated, pretrained)
    tracking.log_skipped_images(skipped)
    model = _build(params, evaluated)
    predict = classifier.CompiledClassifier(model, batch_size=params.batch_size)
    probabilities = scoring.predicted_scores(predict, evaluated.images)
    rows = np.arange(len(evaluated.labels))
    true_class = np.clip(probabilities[rows, evaluated.labels], 1e-7, 1.0)
    mlflow.log_metrics(
        {
            "test_accuracy": float(np.mean(np.argmax(probabilities, axis=1) == evaluated.labels)),
            "test_loss": float(-np.mean(np.log(true_class))),
            "test_images": len(evaluated.labels),
        }
    )
    return model, evaluated


def _build(params: TrainParams, images: datasets.ImageSet) -> keras.Model:
    """``params``' architecture and weights for the shape and classes of ``images``."""
    return registry.build_model(
        params.architecture,
        images.images.shape[1:],
        len(images.class_names),
        weights=params.weights,
        seed=params.seed,
    )


def _check_pretrained_data(
    params: TrainParams, images: datasets.ImageSet, pretrained: tuple[tuple[int, int, int], int]
) -> None:
    classes = pretrained[1]
    if len(images.class_names) != classes:
        raise ValueError(
            f"expected dataset={params.dataset!r} to have the {classes} ImageNet classes of "
            f"architecture={params.architecture!r} with weights={params.weights!r} "
            f"(imagenet-sample, or a folder of WordNet-id folders), got "
            f"{len(images.class_names)} classes"
        )


def class_names_document(class_names: tuple[str, ...]) -> dict[str, Any]:
    """``class_names.json``: the class names, and for the 1000 ImageNet classes each
    class's index, WordNet id and words."""
    document: dict[str, Any] = {"class_names": list(class_names)}
    if class_names == imagenet.wnids():
        document["imagenet_classes"] = [
            {"index": entry.index, "wnid": entry.wnid, "words": entry.words}
            for entry in imagenet.classes()
        ]
    return document
