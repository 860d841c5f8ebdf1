"""Which run names MLflow made up (and a step may replace) and which a person gave."""

from __future__ import annotations

import random

import pytest
from mlflow.utils import name_utils

from pixel_threshold.runs import generated_names


def test_every_name_mlflow_generates_is_recognised() -> None:
    random.seed(0)  # MLflow's generator draws from the global RNG
    names = {name_utils._generate_random_name() for _ in range(3000)}
    assert all(generated_names.is_generated(name) for name in names)


def test_names_mlflow_cut_at_20_characters_are_recognised() -> None:
    long = [
        f"{adjective}-{noun}-{number}"
        for adjective in name_utils._GENERATOR_PREDICATES
        for noun in name_utils._GENERATOR_NOUNS
        for number in (7, 1000)
        if len(f"{adjective}-{noun}-{number}") > 20
    ]
    assert long
    assert all(generated_names.is_generated(name[:20]) for name in long)


@pytest.mark.parametrize(
    "name",
    [
        "ci-smoke",
        "my attack",
        "gentle-owl",
        "gentle-owl-1001",
        "gentle-owl-007",
        "gentle-owl-12-b",
        "smoke-test-1",
        "Gentle-owl-12",
        "train small_cnn digits",
    ],
)
def test_names_a_person_gives_are_not_taken_for_generated_ones(name: str) -> None:
    assert not generated_names.is_generated(name)
