"""A safe reader for PyTorch's legacy checkpoint format (``torch.save`` before 1.6), numpy only.

The legacy format is five records one after the other: four pickles (a magic number,
the protocol version, system information, the object itself) and then the raw bytes
of every tensor storage, each preceded by its element count. The object pickle names
its storages through persistent ids and rebuilds tensors with
``torch._utils._rebuild_tensor_v2``.

Nothing here runs code from the file. Before a pickle is unpickled, its opcodes are
scanned (``pickletools.genops`` parses without executing) and any opcode or global
name outside the few a state dict needs is refused; the unpickler then resolves only
those names, to functions of this module that build numpy arrays. A pickle that
would call ``os.system`` (or anything else) is refused before any of it is loaded.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first record of a legacy checkpoint (torch.serialization's magic number)."""
STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
"""torch storage classes -> the little-endian numpy dtype of their elements."""
ALLOWED_OPCODES = frozenset(
    (
        *("PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP"),
        *("NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2"),
        *("LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"),
        *("STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"),
        *("UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"),
        *("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST"),
        *("APPEND", "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS"),
        *("GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"),
        *("GLOBAL", "REDUCE", "BUILD", "PERSID", "BINPERSID"),
    )
)
"""Opcodes a state dict needs: no INST/OBJ/NEWOBJ/EXT/STACK_GLOBAL, nothing that
imports by a computed name or builds an arbitrary class."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint that asks for something a tensor state dict never needs."""


@dataclass(frozen=True)
class _Storage:
    """A storage named by the object pickle; its bytes come later in the file."""

    key: str
    dtype: np.dtype[Any]
    size: int

    def __setstate__(self, state: object) -> None:
        raise UnsafeCheckpointError("expected no BUILD on a storage in the checkpoint")


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as ``_rebuild_tensor_v2`` describes it: a strided view of a storage."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def __setstate__(self, state: object) -> None:
        raise UnsafeCheckpointError("expected no BUILD on a tensor in the checkpoint")


class _StateDict(dict[str, Any]):
    """An ``OrderedDict`` of the checkpoint; the ``_metadata`` torch attaches is dropped."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or set(state) - {"_metadata"}:
            raise UnsafeCheckpointError("expected only _metadata as a state dict's state")


def _rebuild_tensor(
    storage: _Storage,
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: object,
) -> _TensorRef:
    """``torch._utils._rebuild_tensor_v2``'s arguments (requires_grad and hooks ignored)."""
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError(f"expected a storage to rebuild a tensor from, got {storage!r}")
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


@dataclass(frozen=True)
class _StorageType:
    """A torch storage class (``torch.FloatStorage``...), standing for its dtype."""

    dtype: np.dtype[Any]

    def __setstate__(self, state: object) -> None:
        raise UnsafeCheckpointError("expected no BUILD on a storage type in the checkpoint")


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}
"""The only names the object pickle may import, and what they resolve to here."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(f"refusing to import {module}.{name} from a checkpoint")
        return ALLOWED_GLOBALS[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"expected a storage persistent id, got {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str)):
            raise UnsafeCheckpointError(f"expected a storage persistent id, got {pid!r}")
        return _Storage(key, storage_type.dtype, int(size))


def _checked_pickle(handle: IO[bytes], what: str) -> Any:
    """Scan the next pickle in ``handle`` for refused opcodes and globals, then load it."""
    start = handle.tell()
    try:
        for opcode, argument, _ in pickletools.genops(handle):
            if opcode.name not in ALLOWED_OPCODES:
                raise UnsafeCheckpointError(
                    f"refusing the opcode {opcode.name} in the checkpoint's {what}"
                )
            if opcode.name == "GLOBAL":
                module, _, name = str(argument).partition(" ")
                if (module, name) not in ALLOWED_GLOBALS:
                    raise UnsafeCheckpointError(
                        f"refusing to import {module}.{name} from the checkpoint's {what}"
                    )
    except (ValueError, EOFError) as error:
        if isinstance(error, UnsafeCheckpointError):
            raise
        raise ValueError(f"cannot read the checkpoint's {what}: {error}") from error
    handle.seek(start)
    try:
        return _Unpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, TypeError, KeyError) as error:
        raise ValueError(f"cannot read the checkpoint's {what}: {error}") from error


def read_legacy_checkpoint(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a legacy-format PyTorch state dict file, by name, as numpy arrays.

    Raises ``UnsafeCheckpointError`` (a ValueError) for anything a state dict of
    tensors does not need, before running any of it, and ValueError for a file that
    is not a legacy checkpoint (the zip format of torch >= 1.6 included).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        raise ValueError(
            f"expected a legacy-format PyTorch checkpoint, got a zip-format one: {path}"
        )
    with open(path, "rb") as handle:
        return _read(handle, path)


def _read(handle: IO[bytes], path: Path) -> dict[str, npt.NDArray[Any]]:
    if _checked_pickle(handle, "magic number") != LEGACY_MAGIC:
        raise ValueError(f"expected a legacy-format PyTorch checkpoint, got another file: {path}")
    _checked_pickle(handle, "protocol version")
    system = _checked_pickle(handle, "system information")
    if isinstance(system, dict) and system.get("little_endian") is False:
        raise ValueError(f"expected a little-endian checkpoint, got a big-endian one: {path}")
    state = _checked_pickle(handle, "state dict")
    keys = _checked_pickle(handle, "storage list")
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and isinstance(value, _TensorRef) for name, value in state.items()
    ):
        raise ValueError(f"expected a state dict of named tensors in {path}")
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ValueError(f"expected a list of storage keys in {path}")
    storages = {ref.storage.key: ref.storage for ref in state.values()}
    data = {key: _read_storage(handle, storages.get(key), key, path) for key in keys}
    return {name: _tensor(ref, data, path) for name, ref in state.items()}


def _read_storage(
    handle: IO[bytes], storage: _Storage | None, key: str, path: Path
) -> npt.NDArray[Any]:
    """One storage's elements: an int64 element count, then the raw bytes."""
    header = handle.read(8)
    if storage is None or len(header) != 8:
        raise ValueError(f"expected storage {key!r} in {path}, found none or no data")
    count = int(np.frombuffer(header, dtype="<i8")[0])
    if count != storage.size:
        raise ValueError(f"expected {storage.size} elements in storage {key!r}, got {count}")
    raw = handle.read(count * storage.dtype.itemsize)
    if len(raw) != count * storage.dtype.itemsize:
        raise ValueError(f"expected {count} elements in storage {key!r} of {path}: file truncated")
    return np.frombuffer(raw, dtype=storage.dtype)


def _tensor(ref: _TensorRef, data: dict[str, npt.NDArray[Any]], path: Path) -> npt.NDArray[Any]:
    """A tensor copied out of its storage, its view checked to lie inside it."""
    storage = data[ref.storage.key]
    if len(ref.shape) != len(ref.stride) or any(
        size < 0 or step < 0 for size, step in zip(ref.shape, ref.stride, strict=True)
    ):
        raise ValueError(f"expected a valid tensor shape and stride in {path}, got {ref}")
    pairs = zip(ref.shape, ref.stride, strict=True)
    last = ref.offset + sum((size - 1) * step for size, step in pairs)
    if ref.offset < 0 or (0 not in ref.shape and last >= len(storage)):
        raise ValueError(f"expected tensors inside their storage in {path}, got {ref}")
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :],
        shape=ref.shape,
        strides=tuple(step * item for step in ref.stride),
        writeable=False,
    )
    return np.array(view)
