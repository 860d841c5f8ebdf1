"""Which run names MLflow made up, so that a step may replace them, and which a person
gave (``mlflow run --run-name ci-smoke``), which it keeps.

MLflow names a run started without a name ``<adjective>-<noun>-<0..1000>`` from its own
word lists (`mlflow.utils.name_utils`), cut at 20 characters when longer.
"""

from __future__ import annotations

from mlflow.utils import name_utils

LENGTH = 20
"""MLflow cuts the names it makes up at this length."""
NUMBER_MAX = 1000
ADJECTIVES = frozenset(name_utils._GENERATOR_PREDICATES)
NOUNS = frozenset(name_utils._GENERATOR_NOUNS)


def is_generated(name: str) -> bool:
    """Whether ``name`` is one MLflow makes up for a run started without one:
    ``<adjective>-<noun>-<0..1000>`` from its own word lists (`mlflow.utils.name_utils`),
    cut at 20 characters. Any other name (``ci-smoke``, ``my attack``) a person gave."""
    adjective, _, rest = name.partition("-")
    if len(name) > LENGTH or adjective not in ADJECTIVES:
        return False
    cut = len(name) == LENGTH
    return any(_noun_and_number(rest, noun, cut=cut) for noun in NOUNS)


def _noun_and_number(text: str, noun: str, *, cut: bool) -> bool:
    """Whether ``text`` is ``<noun>-<0..1000>`` or, if ``cut``, the start of one."""
    head = f"{noun}-"
    if not text.startswith(head):
        return cut and head.startswith(text)
    number = text.removeprefix(head)
    if not number.isdigit() or (number.startswith("0") and number != "0"):
        return cut and not number
    return cut or int(number) <= NUMBER_MAX
