"""Legacy-format PyTorch checkpoints written without torch, opcode by opcode as
``torch.save`` (before 1.6) writes a state dict of float32 tensors."""

from __future__ import annotations

import io
import pickle

import numpy as np
import numpy.typing as npt

from pixel_threshold.models.imagenet.checkpoint import LEGACY_MAGIC


def _text(value: str) -> bytes:
    encoded = value.encode()
    return b"X" + len(encoded).to_bytes(4, "little") + encoded


def _int(value: int) -> bytes:
    return b"J" + value.to_bytes(4, "little", signed=True)


def _ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(value) for value in values) + b"t"


def header() -> bytes:
    """The magic number, protocol version and system-information records."""
    buffer = io.BytesIO()
    for record in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(record, buffer, protocol=2)
    return buffer.getvalue()


def state_pickle(state: dict[str, npt.NDArray[np.float32]], *, transposed: str = "") -> bytes:
    """The object pickle: an OrderedDict of ``_rebuild_tensor_v2`` calls on storages
    ``"0"``, ``"1"``, ...; the tensor named ``transposed`` (2-D) is stored column-major."""
    out = bytearray(b"\x80\x02ccollections\nOrderedDict\n)R(")
    for number, (name, array) in enumerate(state.items()):
        shape = tuple(int(size) for size in array.shape)
        stride = tuple(int(step) for step in np.cumprod((1, *shape[:0:-1]))[::-1])
        if name == transposed:
            stride = (1, shape[0])
        out += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text(str(number))
        out += _text("cpu") + _int(int(array.size)) + b"NtQ"
        out += _int(0) + _ints(shape) + _ints(stride) + b"\x89ccollections\nOrderedDict\n)R"
        out += b"tR"
    return bytes(out + b"u.")


def checkpoint_bytes(state: dict[str, npt.NDArray[np.float32]], *, transposed: str = "") -> bytes:
    """A whole legacy checkpoint of ``state``."""
    buffer = io.BytesIO()
    buffer.write(header() + state_pickle(state, transposed=transposed))
    pickle.dump([str(number) for number in range(len(state))], buffer, protocol=2)
    for name, array in state.items():
        values = array.T if name == transposed else array
        flat = np.ascontiguousarray(values, dtype="<f4").ravel()
        buffer.write(np.array([flat.size], dtype="<i8").tobytes() + flat.tobytes())
    return buffer.getvalue()
