"""Step ``evaluate``: a model on an attack run's clean and adversarial images."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import numpy.typing as npt
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from pixel_threshold.artifacts import manifest, names, tarball
from pixel_threshold.data import datasets
from pixel_threshold.models import loading, scoring
from pixel_threshold.report import confusion
from pixel_threshold.runs import naming, outcome, records, tracking
from pixel_threshold.runs.params import EvaluateParams
from pixel_threshold.steps import plan


def run_evaluate(params: EvaluateParams) -> str:
    """Evaluate on ``adv_testing.tar.gz`` (labels from its manifest) and on the clean
    images it came from; log accuracies, macro precision/recall/F1 and confusion
    matrices (CSV and PNG); return the run id.

    ``adversarial_accuracy`` reproduces the attack run's exactly when the model is the
    attacked one; ``attack_agreement`` is the share of adversarial images given the
    class the attack recorded.
    """
    with tracking.step_run("evaluate") as run:
        tracking.log_params(params)
        attack_run = _attack_run(params.attack_run_id, run.info.experiment_id)
        naming.name_run(f"evaluate {attack_run.name}")
        _check_logged(attack_run)
        model_uri = params.model or attack_run.model_uri
        mlflow.set_tags(
            {tracking.ATTACK_RUN_TAG: attack_run.run_id, tracking.MODEL_URI_TAG: model_uri}
        )
        options = plan.model_options(dataclasses.replace(attack_run.params, model=model_uri))
        predict = loading.load_classifier(model_uri, options)
        shape = predict.image_shape or datasets.natural_shape(attack_run.data)
        adversarial = tracking.read_adversarial_set(attack_run.run_id, shape)
        logged = manifest.read(adversarial.manifest, source=f"attack run {attack_run.run_id}")
        clean = datasets.attack_set(
            attack_run.data,
            shape,
            limit=attack_run.params.limit,
            resize=attack_run.params.resize,
        )
        labels = adversarial.labels
        indices = logged["index"]
        if indices.min() < 0 or indices.max() >= len(clean.labels):
            raise ValueError(
                f"expected manifest indices in [0, {len(clean.labels)}) in attack run "
                f"{attack_run.run_id}, got {indices.min()} to {indices.max()}"
            )
        originals = clean.images[indices]
        if not np.array_equal(clean.labels[indices], labels):
            raise ValueError(
                f"expected the images of data={attack_run.data!r} to have the labels "
                f"in attack run {attack_run.run_id}'s manifest: the data changed"
            )
        _, classes = scoring.probed(
            predict, originals, uri=model_uri, outputs=attack_run.params.outputs
        )
        if classes != len(clean.class_names):
            raise ValueError(
                f"expected model={model_uri!r} to have the {len(clean.class_names)} classes of "
                f"data={attack_run.data!r}, got {classes}"
            )
        class_indices = np.arange(len(clean.class_names))
        predicted = {
            "clean": scoring.predicted_labels(predict, originals),
            "adversarial": scoring.predicted_labels(predict, adversarial.images),
        }
        mlflow.log_metric(
            "attack_agreement",
            float(np.mean(predicted["adversarial"] == logged["label_after"])),
        )
        with tempfile.TemporaryDirectory() as folder:
            for name, guesses in predicted.items():
                mlflow.log_metrics(_scores(name, labels, guesses))
                matrix = confusion_matrix(labels, guesses, labels=class_indices)
                tarball.write_table(
                    Path(folder) / names.CONFUSION_MATRIX.format(images=name, kind="csv"),
                    {
                        "true_class": clean.class_names,
                        **dict(zip(clean.class_names, matrix.T.tolist(), strict=True)),
                    },
                )
                confusion.confusion_plot(
                    Path(folder) / names.CONFUSION_MATRIX.format(images=name, kind="png"),
                    matrix,
                    clean.class_names,
                    f"{name} images",
                )
            mlflow.log_artifacts(folder)
        run_id: str = run.info.run_id
    outcome.print_outcome(run_id)
    return run_id


def _check_logged(attack_run: records.AttackRun) -> None:
    if not tracking.has_adversarial_set(attack_run.run_id):
        raise ValueError(
            f"expected attack run {attack_run.run_id} ({attack_run.status}) to have logged "
            f"{names.ADV_TESTING}, found none"
        )


def _attack_run(attack_run_id: str, experiment_id: str) -> records.AttackRun:
    if not attack_run_id:
        return records.latest_attack_run(experiment_id)
    return records.attack_run(attack_run_id, param="attack_run_id")


def _scores(
    name: str, labels: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> dict[str, float]:
    """``{name}_accuracy`` and ``{name}_precision``, ``_recall``, ``_f1``: macro averages
    over the classes that occur as labels or predictions."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="macro", zero_division=0
    )
    return {
        f"{name}_accuracy": float(np.mean(predicted == labels)),
        f"{name}_precision": float(precision),
        f"{name}_recall": float(recall),
        f"{name}_f1": float(f1),
    }
