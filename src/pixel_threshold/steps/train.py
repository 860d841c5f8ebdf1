"""Step ``train``: fit a classifier on a dataset's train split, log and register it."""

from __future__ import annotations

import keras
import mlflow

from pixel_threshold import data, models, tracking
from pixel_threshold.steps import naming
from pixel_threshold.steps.params import TrainParams


def _log_epoch(epoch: int, logs: dict[str, float]) -> None:
    """Log Keras' per-epoch metrics (loss, accuracy, val_loss, val_accuracy) to MLflow."""
    mlflow.log_metrics({name: float(value) for name, value in logs.items()}, step=epoch)


def run_train(params: TrainParams) -> str:
    """Train, evaluate on the test split, log the model as ``model``; return the run id.

    The test split is the validation data of the per-epoch metrics; ``test_accuracy``
    and ``test_loss`` are the final model's, from the last epoch.
    """
    with tracking.step_run("train") as run:
        tracking.log_params(params)
        naming.name_run(naming.train_run_name(params))
        for name in ("epochs", "batch_size"):
            if getattr(params, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {name}={getattr(params, name)}")
        if not params.learning_rate > 0:
            raise ValueError(
                f"expected learning_rate > 0, got learning_rate={params.learning_rate}"
            )
        models.check_build(params.architecture, params.weights)
        split = data.training_split(params.dataset)
        tracking.log_skipped_images(split.skipped)
        model = models.build_model(
            params.architecture,
            split.train_images.shape[1:],
            len(split.class_names),
            weights=params.weights,
            seed=params.seed,
        )
        history = models.train_classifier(
            model,
            split.train_images,
            split.train_labels,
            epochs=params.epochs,
            batch_size=params.batch_size,
            learning_rate=params.learning_rate,
            seed=params.seed,
            validation=(split.test_images, split.test_labels),
            callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=_log_epoch)],
        )
        final = {name: values[-1] for name, values in history.history.items()}
        mlflow.log_metrics({"test_accuracy": final["val_accuracy"], "test_loss": final["val_loss"]})
        mlflow.log_dict({"class_names": list(split.class_names)}, "class_names.json")
        models.log_model(
            model,
            name=tracking.MODEL_ARTIFACT,
            example=split.test_images[:2],
            registered_model_name=params.register_model_name or None,
        )
        run_id: str = run.info.run_id
        return run_id
