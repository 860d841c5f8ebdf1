"""The Ray sharding's pieces that need no cluster: the worker's task in-process, and the
errors an attack with ``ray_address`` gives before it reaches a cluster."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from pixel_threshold.attack import AttackConfig, ImageResult, PixelThresholdAttack, Sample
from pixel_threshold.data.datasets import digits
from pixel_threshold.models import classifier, loading, registry
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps import sharding
from pixel_threshold.steps.plan import attack_config
from tests.ray_head import free_port

if TYPE_CHECKING:
    import keras

CONFIG = AttackConfig(th=3, es=1, max_iter=5, popsize=20, batch_size=60, seed=4)
RANDOM_SEARCH = AttackConfig(
    th=3, es=2, loss="probability", max_iter=50, popsize=2, batch_size=60, seed=4
)


def _by_index(results: list[ImageResult]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(result) for result in sorted(results, key=lambda r: r.index)]


@pytest.fixture(scope="module")
def model(digits_weights: Path) -> keras.Model:
    return registry.build_model("small_cnn", (8, 8, 1), 10, weights=str(digits_weights))


@pytest.mark.parametrize("config", [CONFIG, RANDOM_SEARCH], ids=["de", "random-search"])
def test_a_worker_loads_the_model_once_and_attacks_its_shards_as_a_local_run(
    monkeypatch: pytest.MonkeyPatch, model: keras.Model, config: AttackConfig
) -> None:
    split = digits()
    samples = [
        Sample(index, image, int(label))
        for index, (image, label) in enumerate(
            zip(split.test_images[:9], split.test_labels[:9], strict=True)
        )
    ]
    local = list(
        PixelThresholdAttack(config).run(
            samples, classifier.CompiledClassifier(model, batch_size=60)
        )
    )
    assert any(result.success for result in local)
    assert any(result.attacked and not result.success for result in local)

    model_file = loading.keras_bytes(model)
    worker_model = sharding.WorkerModel(
        digest=hashlib.sha256(model_file).hexdigest(),
        batch_size=60,
        input_range=(0.0, 255.0),
        mean=(),
        std=(),
    )
    loads = []
    load_model = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda uri: loads.append(uri) or load_model(uri))
    monkeypatch.setattr(sharding, "_loaded", {})
    shards = [samples[:4], samples[4:7], samples[7:]]
    shipped = pickle.loads(pickle.dumps(config))  # as Ray hands it to a worker
    assert (shipped.es, shipped.loss) == (config.es, config.loss)
    sharded = [
        result
        for shard in shards
        for result in sharding.attack_shard(model_file, worker_model, shipped, shard)
    ]
    assert len(loads) == 1
    np.testing.assert_equal(_by_index(sharded), _by_index(local))


def test_shard_size_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match=r"expected shard_size >= 1, got shard_size=0"):
        attack_config(AttackParams(shard_size=0))


def test_without_ray_installed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray has
    with (
        pytest.raises(ValueError, match=r"ray_address='auto' needs Ray.*pip install '\.\[ray\]'"),
        sharding.searching(CONFIG, None, ray_address="auto"),  # type: ignore[arg-type]
    ):
        pass


@pytest.mark.slow  # needs Ray: the slow suite installs it
def test_an_address_where_no_cluster_listens_is_refused_at_once() -> None:
    address = f"127.0.0.1:{free_port()}"
    with (
        pytest.raises(ValueError, match=rf"ray_address='{address}'.*nothing answers there"),
        sharding.searching(CONFIG, None, ray_address=address),  # type: ignore[arg-type]
    ):
        pass


@pytest.mark.slow  # meaningful where Ray is installed: the slow suite installs it
def test_the_core_and_a_local_attack_never_import_ray() -> None:
    code = (
        "import sys, pixel_threshold.attack, pixel_threshold.steps.attack; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'ray'))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert imported.strip() == "[]"


class FakeRay:
    """The part of the ``ray`` module that ``ShardedSearch`` sets up with."""

    def __init__(self, resources: dict[str, float]) -> None:
        self.resources = resources
        self.task_options: dict[str, Any] = {}

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, function: Any) -> FakeRay:
        assert function is sharding.attack_shard
        return self

    def options(self, **options: Any) -> FakeRay:
        self.task_options = options
        return self

    def put(self, value: Any) -> str:
        return "reference"


@pytest.mark.parametrize(
    ("resources", "slots", "gpus"),
    [({"CPU": 64.0, "GPU": 4.0}, 4, 1), ({"CPU": 6.0}, 6, 0), ({"CPU": 0.5}, 1, 0)],
)
def test_a_task_holds_a_gpu_when_the_cluster_has_some_else_a_cpu(
    resources: dict[str, float], slots: int, gpus: int
) -> None:
    ray = FakeRay(resources)
    worker_model = sharding.WorkerModel("digest", 60, (0.0, 255.0), (), ())
    search = sharding.ShardedSearch(ray, CONFIG, b"model", worker_model, shard_size=5)
    assert search.slots == slots
    assert ray.task_options == {
        "num_cpus": 1,
        "num_gpus": gpus,
        "max_retries": sharding.TASK_RETRIES,
    }
