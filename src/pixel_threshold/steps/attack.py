"""Step ``attack``: attack the first ``limit`` images of a dataset, log the adversarial set."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from pixel_threshold import artifacts, data, metrics, models, report, tracking
from pixel_threshold.attack import AttackConfig, ImageResult, PixelThresholdAttack, Predict, Sample
from pixel_threshold.steps.params import AttackParams

ADV_TESTING = "adv_testing.tar.gz"
DISTANCE_METRICS = "distance_metrics.csv.gz"
EXAMPLES = "examples.png"
UNTARGETED = -1


def attack_config(params: AttackParams) -> AttackConfig:
    """The core's configuration; raises ValueError naming any bad parameter."""
    if params.limit < 1:
        raise ValueError(f"expected limit >= 1, got limit={params.limit}")
    models.parse_input_range(params.input_range)
    return AttackConfig(
        attack_type=params.attack_type,
        th=params.th,
        es=params.es,
        max_iter=params.max_iter,
        popsize=params.popsize,
        target=None if params.target == UNTARGETED else params.target,
        batch_size=params.batch_size,
        seed=params.seed,
    )


def run_attack(params: AttackParams) -> str:
    """Attack, log metrics, ``adv_testing.tar.gz``, ``distance_metrics.csv.gz`` and
    ``examples.png``; return the run id."""
    with tracking.step_run("attack") as run:
        tracking.log_params(params)
        config = attack_config(params)
        model_uri = params.model or (
            f"runs:/{tracking.latest_run('train', run.info.experiment_id).info.run_id}"
            f"/{tracking.MODEL_ARTIFACT}"
        )
        model = models.load_model(model_uri)
        mlflow.set_tags({tracking.MODEL_URI_TAG: model_uri, tracking.DATA_TAG: params.data})
        train_run_id = tracking.model_run_id(model_uri)
        if train_run_id is not None:
            mlflow.set_tag(tracking.TRAIN_RUN_TAG, train_run_id)
        attacked = data.attack_set(params.data, model.input_shape[1:], limit=params.limit)
        classes = int(model.output_shape[-1])
        if classes != len(attacked.class_names):
            raise ValueError(
                f"expected data={params.data!r} to have the model's {classes} classes, "
                f"got {len(attacked.class_names)}"
            )
        classifier = models.compile_classifier(
            model,
            batch_size=config.batch_size,
            input_range=models.parse_input_range(params.input_range),
            probe=attacked.images,
        )
        results, seconds = _attack(config, attacked, classifier)
        adversarials = np.stack([result.adversarial for result in results])
        distances = metrics.image_distances(attacked.images, adversarials)
        # Scored again as evaluate will score them: the search's batches had other shapes.
        adversarial_labels = models.predict_labels(classifier, adversarials)
        mlflow.log_metrics(metrics.attack_metrics(results, adversarial_labels, distances, seconds))
        with tempfile.TemporaryDirectory() as folder:
            _write_artifacts(Path(folder), attacked, results, adversarials, distances)
            mlflow.log_artifacts(folder)
        run_id: str = run.info.run_id
        return run_id


def _attack(
    config: AttackConfig, attacked: data.ImageSet, predict: Predict
) -> tuple[list[ImageResult], float]:
    """Results in attacked-set order, and the attack's wall time in seconds."""
    samples = (
        Sample(index, image, int(label))
        for index, (image, label) in enumerate(zip(attacked.images, attacked.labels, strict=True))
    )
    results = []
    successes = queries = 0
    start = time.perf_counter()
    description = f"{config.attack_type} th={config.th} es={config.es}"
    with tqdm(total=len(attacked.labels), desc=description, unit="img") as bar:
        for result in PixelThresholdAttack(config).run(samples, predict):
            results.append(result)
            successes += result.success
            queries += result.queries
            rate = queries / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(successes=successes, queries_per_s=f"{rate:.0f}", refresh=False)
            bar.update()
    seconds = time.perf_counter() - start
    results.sort(key=lambda result: result.index)
    return results, seconds


def _write_artifacts(
    folder: Path,
    attacked: data.ImageSet,
    results: Sequence[ImageResult],
    adversarials: npt.NDArray[np.uint8],
    distances: dict[str, metrics.FloatArray],
) -> None:
    per_image: dict[str, list[Any]] = {
        "index": [result.index for result in results],
        "source": list(attacked.sources),
        "label": [result.label for result in results],
        "success": [result.success for result in results],
    }
    distance_columns = {name: distances[name].tolist() for name in metrics.DISTANCES}
    artifacts.write_adv_testing(
        folder / ADV_TESTING,
        adversarials,
        attacked.labels,
        attacked.class_names,
        {
            "index": per_image["index"],
            "source": per_image["source"],
            "attacked": [result.attacked for result in results],
            "success": per_image["success"],
            "queries": [result.queries for result in results],
            "generations": [result.generations for result in results],
            "label_before": [result.label_before for result in results],
            "label_after": [result.label_after for result in results],
            "p_true_before": [result.p_true_before for result in results],
            "p_true_after": [result.p_true_after for result in results],
            **distance_columns,
        },
    )
    artifacts.write_table(folder / DISTANCE_METRICS, {**per_image, **distance_columns})
    shown = np.argsort(~np.array(per_image["success"]), kind="stable")[:8]
    report.examples_figure(
        folder / EXAMPLES,
        attacked.images[shown],
        adversarials[shown],
        [results[row].label for row in shown],
        [results[row].label_after for row in shown],
        attacked.class_names,
    )
