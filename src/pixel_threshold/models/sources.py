"""What kind of model a ``model`` parameter names, read from the URL scheme, the
MLmodel file or the file suffix: never guessed.

- ``http://...``, ``https://...``: http, a scoring server (MLflow's ``/invocations``);
- ``runs:/``, ``models:/``, a folder with an MLmodel file: by its flavours, in this
  order: keras, pytorch, onnx, sklearn; else python_function (pyfunc);
- a ``.keras`` file: keras; ``.onnx``: onnx; ``.pt``: pytorch (TorchScript).

Also what the tracking server's errors while a model is read mean to the loader: a
refused login or permission (`is_refusal`), an answer cut off mid-way (`answer_cut_off`),
asked for once more (`once_more_if_cut`, which a step's run uses too).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
KINDS = ("keras", "pytorch", "onnx", "sklearn", "pyfunc", "http")
FLAVOURS = (("keras", "keras"), ("pytorch", "pytorch"), ("onnx", "onnx"), ("sklearn", "sklearn"))
"""MLflow flavours in the order they are preferred, and the kind each loads as; a model
with none of them but ``python_function`` is a pyfunc."""
SUFFIXES = {".keras": "keras", ".onnx": "onnx", ".pt": "pytorch"}
MLMODEL = "MLmodel"


@dataclass(frozen=True)
class ModelSource:
    """A model's kind and where it is: a URI MLflow resolves, a local path, or a URL;
    ``mlflow`` says whether MLflow loads it (its flavours gave the kind)."""

    uri: str
    kind: str
    mlflow: bool


def model_source(uri: str) -> ModelSource:
    """The kind of the model ``uri`` names; raises ValueError, naming ``model``, if it
    names none this tool loads."""
    if uri.startswith(("http://", "https://")):
        return ModelSource(uri, "http", mlflow=False)
    if is_mlflow_model(uri):
        return ModelSource(uri, _kind_of_flavours(uri, _flavours(uri)), mlflow=True)
    path = Path(uri)
    kind = SUFFIXES.get(path.suffix)
    if kind is not None and path.is_file():
        return ModelSource(uri, kind, mlflow=False)
    raise ValueError(
        "expected model to be runs:/<run_id>/<path>, models:/<name>/<version>, "
        "models:/<name>@<alias>, a folder with an MLmodel file, an existing .keras, .onnx "
        f"or TorchScript .pt file, or an http(s):// scoring URL, got model={uri!r}"
    )


def is_mlflow_model(uri: str) -> bool:
    """Whether MLflow resolves ``uri``: ``runs:/``, ``models:/``, or a folder with an
    MLmodel file."""
    return uri.startswith(("runs:/", "models:/")) or (Path(uri) / MLMODEL).is_file()


def _flavours(uri: str) -> dict[str, dict[str, object]]:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        flavours: dict[str, dict[str, object]] = mlflow.models.get_model_info(uri).flavors
    except (MlflowException, OSError) as error:
        if is_refusal(error):
            raise
        raise ValueError(f"cannot load model={uri!r}: {first_line(error)}") from error
    return flavours


def is_refusal(error: Exception) -> bool:
    """Whether ``error`` is the tracking server refusing a login (401) or a permission
    (403): left to the step, which says so naming the user (`runs.logins`)."""
    status = getattr(error, "get_http_status_code", lambda: 0)()
    return status in (401, 403)


CUT_OFF_DOWNLOAD = "Failed to download artifacts from path"
"""How MLflow 3.17 words any download of a model's files that failed: it does not say why
(a path that is not there reads the same)."""


def answer_cut_off(error: BaseException) -> bool:
    """Whether ``error``, or an error it came from, is an answer of the tracking server
    that stopped mid-way (a server killed or restarted while it answered): a connection
    broken while the answer was read, or a download of the model's files that failed
    (`CUT_OFF_DOWNLOAD`). MLflow retries a server that does not answer, not these."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, requests.exceptions.ChunkedEncodingError):
            return True
        if str(getattr(seen, "message", "")).startswith(CUT_OFF_DOWNLOAD):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _kind_of_flavours(uri: str, flavours: dict[str, dict[str, object]]) -> str:
    for flavour, kind in FLAVOURS:
        if flavour in flavours:
            return kind
    if "python_function" in flavours:
        return "pyfunc"
    raise ValueError(
        f"expected model={uri!r} to have a flavour this tool loads (keras, pytorch, onnx, "
        f"sklearn or python_function), got {', '.join(sorted(flavours))}"
    )


def once_more_if_cut(
    request: Callable[[], T], what: str, *, again: Callable[[], T] | None = None
) -> T:
    """``request()``, made once more (``again()`` if given) if the tracking server's answer
    to it was cut off (`answer_cut_off`), saying on stderr that the answer to ``what`` was.
    For requests that may be made twice: a read, a tag set again, a run ended again with
    the same status."""
    try:
        return request()
    except Exception as error:
        if not answer_cut_off(error):
            raise
        print(
            f"{what} was cut off ({first_line(error)}): the tracking server may have stopped "
            "answering mid-way; asking once more",
            file=sys.stderr,
        )
    return (again or request)()


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (MLflow's ``message`` where it has one), or
    the name of its type where it says nothing."""
    message = getattr(error, "message", None)
    text = str(message if message is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__
