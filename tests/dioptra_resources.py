"""Dioptra 1.2.2 without its server: check a folder of resources (``dioptra.toml``, its
plugins and entrypoints) the way Dioptra's importer does, build the job configuration its
REST API would serve and validate it with Dioptra's own validator; the plugin bundles
and the schema the worker writes (a job itself: `tests.dioptra_jobs`).

``dioptra.restapi`` cannot be imported here (it needs Flask and more): what this module
needs of it is rebuilt below, each constant naming where it comes from.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import sys
import tarfile
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import dioptra.sdk.utilities.run_dioptra_job as worker
import dioptra.task_engine
import jsonschema
import structlog
import yaml
from dioptra.pyplugs import _plugins
from dioptra.sdk.utilities.entrypoint_swaps import compile_swaps_config
from dioptra.task_engine import util
from dioptra.task_engine.type_registry import BUILTIN_TYPES

# dioptra/restapi/v1/workflows/service.py, VALID_ENTRYPOINT_PARAM_TYPES
ENTRYPOINT_PARAM_TYPES = frozenset({"string", "float", "integer", "boolean", "list", "mapping"})
# dioptra/restapi/v1/entrypoints/task_engine_yaml.py, _ENTRYPOINT_TO_TASK_ENGINE_TYPES
TASK_ENGINE_TYPES = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "float": "number",
}
# dioptra/restapi/v1/plugins/schema.py, ALLOWED_PLUGIN_FILENAME_REGEX
PLUGIN_FILENAME = re.compile(r"^(?!.*/_)(?!_/)([a-zA-Z][a-zA-Z0-9_]*/)*[a-zA-Z_][a-zA-Z0-9_]*\.py$")
# dioptra/restapi/v1/plugins/schema.py, ALLOWED_PLUGIN_TASK_REGEX and
# ALLOWED_PLUGIN_TASK_PARAMETER_REGEX; dioptra/restapi/v1/jobs/schema.py,
# ALLOWED_METRIC_NAME_REGEX (all three the same pattern)
IDENTIFIER = re.compile(r"^([A-Z]|[A-Z_][A-Z0-9_]+)$", flags=re.IGNORECASE)
# dioptra/restapi/utils.py, ALLOWED_RESOURCE_NAME_REGEX and ALLOWED_PLUGIN_NAME_REGEX
RESOURCE_NAME = re.compile(r"\A(?! +\Z)[A-Za-z0-9_. -]+\Z")
PLUGIN_NAME = re.compile(r"\A(?:[A-Za-z]|[A-Za-z_][A-Za-z0-9_]+)\Z")
# dioptra/restapi/v1/workflows/service.py, DIOPTRA_RESOURCES_SCHEMA (a package data file)
RESOURCES_SCHEMA = Path("restapi", "v1", "workflows", "dioptra-resources.schema.json")

LOGGER = structlog.stdlib.get_logger()


# --- the resource files ------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """A ``dioptra.toml`` (``config``) and the folder its paths are relative to."""

    root: Path
    config: dict[str, Any]

    @classmethod
    def load(cls, toml_path: Path) -> Resources:
        """Read ``toml_path`` (stdlib ``tomllib``: the same parser as Dioptra's ``tomli``)."""
        with toml_path.open("rb") as file:
            return cls(toml_path.parent, tomllib.load(file))

    def plugins(self) -> dict[str, dict[str, Any]]:
        """Each ``[[plugins]]`` table by the plugin's name (its folder's name)."""
        return {Path(plugin["path"]).stem: plugin for plugin in self.config.get("plugins", [])}

    def plugin_dir(self, name: str) -> Path:
        return self.root / str(self.plugins()[name]["path"])

    def function_tasks(self, plugin: str) -> list[dict[str, Any]]:
        return list(self.plugins()[plugin].get("tasks", {}).get("functions", []))

    def artifact_tasks(self, plugin: str) -> list[dict[str, Any]]:
        return list(self.plugins()[plugin].get("tasks", {}).get("artifacts", []))

    def entrypoints(self) -> dict[str, dict[str, Any]]:
        """Each ``[[entrypoints]]`` table by its name (default: the file's stem)."""
        return {_entrypoint_name(ep): ep for ep in self.config.get("entrypoints", [])}

    def entrypoint_file(self, name: str) -> dict[str, Any]:
        """The entrypoint's YAML (``graph:`` and ``artifacts:``)."""
        path = self.root / self.entrypoints()[name]["path"]
        return dict(yaml.safe_load(path.read_text()) or {})

    def param_types(self) -> dict[str, Any]:
        """Each ``[[plugin_param_types]]`` name and its structure (None: opaque)."""
        return {t["name"]: t.get("structure") for t in self.config.get("plugin_param_types", [])}


def _entrypoint_name(entrypoint: Mapping[str, Any]) -> str:
    return str(entrypoint.get("name", Path(entrypoint["path"]).stem))


# --- what Dioptra's importer checks ------------------------------------------------------


def resources_schema() -> dict[str, Any]:
    """The JSON schema Dioptra's importer validates ``dioptra.toml`` against, read by path
    (``importlib.resources`` would import ``dioptra.restapi``; ``dioptra`` itself is a
    namespace package, so the path starts from a subpackage)."""
    root = Path(dioptra.task_engine.__file__).parents[1]
    return dict(json.loads((root / RESOURCES_SCHEMA).read_text()))


def schema_errors(resources: Resources) -> list[str]:
    """The TOML's errors against `resources_schema` (the importer stops at the first)."""
    validator = jsonschema.Draft202012Validator(resources_schema())
    return [
        f"{list(error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(resources.config)
    ]


def importer_problems(resources: Resources) -> list[str]:
    """What Dioptra's importer (``ResourceImportService``) refuses after the schema: names,
    files, undeclared types and plugins, duplicates; [] if it would import."""
    problems = _duplicates(resources.config.get("plugins", []), "plugin", key="path")
    problems += _duplicates(resources.config.get("entrypoints", []), "entrypoint")
    types = _known_types(resources)
    for name in resources.plugins():
        problems += _plugin_problems(resources, name, types)
    for name, entrypoint in resources.entrypoints().items():
        problems += _entrypoint_problems(resources, name, entrypoint, types)
    return problems


def _known_types(resources: Resources) -> set[str]:
    return set(BUILTIN_TYPES) | set(resources.param_types())


def _duplicates(tables: list[dict[str, Any]], kind: str, key: str = "name") -> list[str]:
    names = [str(table.get(key)) for table in tables]
    return [f"duplicate {kind} {name!r}" for name in sorted(set(names)) if names.count(name) > 1]


def _plugin_problems(resources: Resources, name: str, types: set[str]) -> list[str]:
    folder = resources.plugin_dir(name)
    if not PLUGIN_NAME.fullmatch(name):
        return [f"plugin name {name!r} is not a Python module name"]
    if not folder.is_dir():
        return [f"plugin {name}: {folder} is not a folder"]
    problems = [
        f"plugin {name}: file name {path!r} refused"
        for path in _plugin_files(folder)
        if not PLUGIN_FILENAME.fullmatch(path)
    ]
    for kind in ("functions", "artifacts"):
        tasks = resources.plugins()[name].get("tasks", {}).get(kind, [])
        problems += _duplicates(tasks, f"{name} task")
        for task in tasks:
            problems += _task_problems(folder, f"{name}.{task['name']}", task, types)
    return problems


def _plugin_files(folder: Path) -> list[str]:
    """The plugin's files the importer uploads (and the worker's bundle holds)."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("[!.]*.py"))


def _task_problems(folder: Path, where: str, task: dict[str, Any], types: set[str]) -> list[str]:
    problems = [] if IDENTIFIER.fullmatch(task["name"]) else [f"{where}: task name refused"]
    if not (folder / task["filename"]).is_file():  # the importer drops such a task silently
        problems.append(f"{where}: no file {task['filename']}")
    for params in (task.get("input_params", []), task["output_params"]):
        problems += _duplicates(params, f"{where} parameter")
        for param in params:
            if not IDENTIFIER.fullmatch(param["name"]):
                problems.append(f"{where}: parameter name {param['name']!r} refused")
            if param["type"] not in types:
                problems.append(f"{where}: {param['name']} has undeclared type {param['type']!r}")
    return problems


def _entrypoint_problems(
    resources: Resources, name: str, entrypoint: dict[str, Any], types: set[str]
) -> list[str]:
    problems = [] if RESOURCE_NAME.fullmatch(name) else [f"entrypoint name {name!r} refused"]
    if not (resources.root / entrypoint["path"]).is_file():
        problems.append(f"entrypoint {name}: no file {entrypoint['path']}")
    params = entrypoint.get("params", [])
    problems += _duplicates(params, f"{name} parameter")
    problems += [
        f"entrypoint {name}: {param['name']} has type {param['type']!r}, not one of "
        f"{sorted(ENTRYPOINT_PARAM_TYPES)}"
        for param in params
        if param["type"] not in ENTRYPOINT_PARAM_TYPES
    ]
    for key in ("plugins", "artifact_plugins"):
        problems += [
            f"entrypoint {name}: {key} names undeclared plugin {plugin!r}"
            for plugin in entrypoint.get(key, [])
            if plugin not in resources.plugins()
        ]
    for artifact in entrypoint.get("artifact_params", []):
        problems += [
            f"entrypoint {name}: artifact {artifact['name']} has undeclared type {p['type']!r}"
            for p in artifact["output_params"]
            if p["type"] not in types
        ]
    return problems


# --- the job configuration the REST API serves -------------------------------------------


def coerce(value: str | None, type_name: str) -> Any:
    """An entrypoint parameter's value from its string, as Dioptra's server coerces it
    (``dioptra/restapi/v1/type_coercions.py``, ``coerce_to_type``)."""
    if value is None:
        return None
    if type_name == "boolean":
        if value.lower() not in {"true", "false"}:
            raise ValueError(f"Not a boolean: {value}")
        return value.lower() == "true"
    if type_name in ("list", "mapping"):
        parsed = json.loads(value)
        if not isinstance(parsed, list if type_name == "list" else dict):
            raise ValueError(f"Not a {type_name}: {value}")
        return parsed
    converters: dict[str, Callable[[str], Any]] = {"string": str, "integer": int, "float": float}
    if type_name not in converters:
        raise ValueError(f"Invalid parameter type: {type_name}.")
    return converters[type_name](value)


def module_name(plugin: str, filename: str) -> str:
    """The module the worker imports a plugin's file as, ``<plugin>.<module path>``."""
    parts = Path(filename).parts
    modules = parts[:-1] if filename == "__init__.py" else parts
    return ".".join([plugin, *(Path(part).stem for part in modules)])


def plugin_reference(plugin: str, filename: str, task: str) -> str:
    """A task's ``plugin:`` in the job configuration, ``<plugin>.<module path>.<task>``
    (``task_engine_yaml._build_plugin_field``)."""
    return f"{module_name(plugin, filename)}.{task}"


def _outputs(params: list[dict[str, Any]]) -> dict[str, str] | list[dict[str, str]]:
    """Output parameters as the task engine takes them (``_build_outputs``): one mapping
    for a single output, else a list of one-entry mappings."""
    if len(params) == 1:
        return {params[0]["name"]: params[0]["type"]}
    return [{param["name"]: param["type"]} for param in params]


def _task_entry(plugin: str, task: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"plugin": plugin_reference(plugin, task["filename"], task["name"])}
    if task["input_params"]:
        entry["inputs"] = [
            {"name": p["name"], "type": p["type"], "required": p.get("required", False)}
            for p in task["input_params"]
        ]
    if task["output_params"]:
        entry["outputs"] = _outputs(task["output_params"])
    return entry


def _tasks_and_types(
    resources: Resources, plugins: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``tasks:`` of the entrypoint's plugins and the ``types:`` they need: once there
    is a task, every declared type (``task_engine_yaml._extract_tasks``)."""
    structures = resources.param_types()
    tasks = {
        task["name"]: _task_entry(plugin, task)
        for plugin in plugins
        for task in resources.function_tasks(plugin)
    }
    return tasks, (dict(structures) if tasks else {})


def _parameters(entrypoint: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    """``parameters:``: the defaults coerced, typed (float -> number), only those the graph
    uses (``EntrypointConfigService.get_config``)."""
    used = _graph_globals(graph)
    parameters: dict[str, Any] = {}
    for param in entrypoint.get("params", []):
        if param["name"] not in used:
            continue
        default = param.get("default_value")
        spec = {} if default is None else {"default": coerce(default, param["type"])}
        if param["type"] in TASK_ENGINE_TYPES:
            spec["type"] = TASK_ENGINE_TYPES[param["type"]]
        parameters[param["name"]] = spec
    return parameters


def _graph_globals(graph: dict[str, Any]) -> set[str]:
    """The names the graph's steps refer to that are not steps (``_get_required_globals``)."""
    references = (util.get_reference_coords(ref)[0] for ref in util.get_references(graph))
    return {name for name in references if name not in graph}


def job_config(resources: Resources, entrypoint: str) -> dict[str, Any]:
    """The task-engine configuration Dioptra's REST API serves the worker for a job of
    ``entrypoint`` without swaps (``GET /jobs/<id>/config``: ``build_task_engine_dict``)."""
    table = resources.entrypoints()[entrypoint]
    contents = resources.entrypoint_file(entrypoint)
    graph = dict(contents.get("graph") or {})
    tasks, types = _tasks_and_types(resources, list(table.get("plugins", [])))
    artifact_inputs: dict[str, Any] = {}
    for artifact in table.get("artifact_params", []):
        artifact_inputs[artifact["name"]] = _outputs(artifact["output_params"])
        for param in artifact["output_params"]:
            types.setdefault(param["type"], resources.param_types().get(param["type"]))
    return {
        "types": {name: s for name, s in types.items() if name not in BUILTIN_TYPES},
        "parameters": _parameters(table, graph),
        "tasks": tasks,
        "graph": graph,
        "artifact_outputs": dict(contents.get("artifacts") or {}),
        "artifact_inputs": artifact_inputs,
    }


def job_parameters(
    resources: Resources, entrypoint: str, values: Mapping[str, object]
) -> dict[str, Any]:
    """What ``GET /jobs/<id>/parameters`` answers for a job given ``values``: every
    entrypoint parameter, its job value (sent as a string) or default, coerced."""
    params = resources.entrypoints()[entrypoint].get("params", [])
    unknown = set(values) - {param["name"] for param in params}
    if unknown:
        raise ValueError(f"{entrypoint} has no parameters {sorted(unknown)}")
    chosen = {name: _as_sent(value) for name, value in values.items()}
    return {
        p["name"]: coerce(chosen.get(p["name"], p.get("default_value")), p["type"]) for p in params
    }


def _as_sent(value: object) -> str:
    """A job parameter's value as a string, as a job request carries it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def validation_errors(config: Mapping[str, Any]) -> list[str]:
    """Dioptra's own validator on a job configuration, as the worker (``_validate_yaml``)
    and the REST API run it: ``compile_swaps_config`` raises ValueError on a schema error,
    ``validate()`` returns the other issues. Reads ``.dioptra/experiment_schema.json`` in
    the working directory if there is one (`write_worker_schema`)."""
    try:
        return [str(issue) for issue in compile_swaps_config(config).validate()]
    except ValueError as error:
        return [str(error)]


# --- plugins: bundles, imports, the worker's schema --------------------------------------


def plugins_bundle(resources: Resources, plugins: list[str], destination: Path) -> Path:
    """The plugins' files as the REST API bundles them (``plugin_pluginfiles_to_bundle``):
    ``<plugin>/<file>`` and a ``manifest.json``, in ``destination`` (a ``.tar.gz``)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}
    with tarfile.open(destination, "w:gz") as tar:
        for plugin in plugins:
            folder = resources.plugin_dir(plugin)
            for path in _plugin_files(folder):
                tar.add(folder / path, arcname=f"{plugin}/{path}")
                manifest.setdefault(plugin, {})[path] = {}
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return destination


def artifact_plugins(resources: Resources, entrypoint: str) -> list[dict[str, Any]]:
    """What ``GET /entrypoints/<id>/snapshots/<sid>/artifactPlugins`` answers: each
    artifact plugin, its files and their artifact tasks (made-up ids)."""
    answer = []
    names = resources.entrypoints()[entrypoint].get("artifact_plugins", [])
    for number, plugin in enumerate(names, start=1):
        files: dict[str, list[dict[str, Any]]] = {}
        for index, task in enumerate(resources.artifact_tasks(plugin), start=1):
            task_id = 100 * number + index
            files.setdefault(task["filename"], []).append({"id": task_id, "name": task["name"]})
        answer.append(
            {
                "id": number,
                "snapshotId": 10 + number,
                "name": plugin,
                "files": [
                    {"filename": name, "tasks": {"functions": [], "artifacts": tasks}}
                    for name, tasks in files.items()
                ],
            }
        )
    return answer


def forget_plugins(names: list[str]) -> None:
    """Drop the plugins' modules from ``sys.modules`` and their functions from pyplugs'
    registry: the worker imports a job's plugins by name from that job's temporary folder
    and would otherwise reuse an earlier job's (the real worker forks per job)."""
    for name in names:
        _plugins._PLUGINS.pop(name, None)
        # a copy of the names first: other threads (MLflow's, TensorFlow's) import too
        for module in [m for m in list(sys.modules) if m == name or m.startswith(f"{name}.")]:
            sys.modules.pop(module, None)


@contextmanager
def plugin_module(resources: Resources, plugin: str, filename: str) -> Iterator[ModuleType]:
    """The plugin's file imported as the worker imports it (``<plugin>.<module>``, the
    plugins' parent folder on ``sys.path``), forgotten after; no bytecode is written."""
    module = module_name(plugin, filename)
    parent = str(resources.plugin_dir(plugin).parent)
    forget_plugins([plugin])
    with mock.patch.object(sys, "dont_write_bytecode", True):
        sys.path.insert(0, parent)
        try:
            yield importlib.import_module(module)
        finally:
            sys.path.remove(parent)
            forget_plugins([plugin])


def write_worker_schema(resources: Resources, entrypoint: str) -> Path:
    """Write, in the working directory, what the worker writes before it validates a job:
    the artifact plugins unpacked in ``.dioptra/serialize`` and, by Dioptra's own
    ``_create_engine_schema``, ``.dioptra/experiment_schema.json`` (the task engine's
    schema, artifact task names and ``args`` limited to the artifact plugins' classes),
    which the validator reads from there. Returns the schema's path."""
    context = worker.Context()
    context.mkdirs()
    plugins = resources.entrypoints()[entrypoint].get("artifact_plugins", [])
    bundle = plugins_bundle(resources, plugins, context.dioptra_dir / "serialize.tar.gz")
    with tarfile.open(bundle) as tar:
        tar.extractall(context.serialize_dir, filter="data")
    forget_plugins(plugins)
    try:
        answer = artifact_plugins(resources, entrypoint)
        worker._create_engine_schema(context=context, plugins=answer, log=LOGGER)
    finally:
        forget_plugins(plugins)
    return Path(context.dioptra_dir, str(worker.SCHEMA_FILENAME))
