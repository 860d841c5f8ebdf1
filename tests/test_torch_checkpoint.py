"""The legacy PyTorch checkpoint reader: tensors come back exact; code never runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from pixel_threshold.models.imagenet.checkpoint import UnsafeCheckpointError, read_legacy_checkpoint
from tests.legacy_torch import checkpoint_bytes, header

STATE = {
    "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 7.5,
    "fc.weight": np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
    "fc.bias": np.array([1.0, -2.0, 3.5, 0.0], dtype=np.float32),
}


def test_reads_every_tensor_exactly(tmp_path: Path) -> None:
    path = tmp_path / "state.pth"
    path.write_bytes(checkpoint_bytes(STATE))
    state = read_legacy_checkpoint(path)
    assert list(state) == list(STATE)
    for name, array in STATE.items():
        assert state[name].dtype == np.float32
        np.testing.assert_array_equal(state[name], array)


def test_reads_a_strided_view_of_its_storage(tmp_path: Path) -> None:
    path = tmp_path / "state.pth"
    path.write_bytes(checkpoint_bytes(STATE, transposed="fc.weight"))
    np.testing.assert_array_equal(read_legacy_checkpoint(path)["fc.weight"], STATE["fc.weight"])


class _RunsACommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, 4])
def test_refuses_a_pickle_that_would_run_code_without_running_it(
    tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"x": _RunsACommand(f"touch {marker}")}, protocol=protocol)
    path = tmp_path / "evil.pth"
    path.write_bytes(header() + payload)
    with pytest.raises(UnsafeCheckpointError, match=r"refusing .*(posix\.system|STACK_GLOBAL)"):
        read_legacy_checkpoint(path)
    assert not marker.exists()
    pickle.loads(payload)  # the same bytes do run code when unpickled as usual
    assert marker.exists()


def test_refuses_code_in_the_first_record(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_RunsACommand(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="magic number"):
        read_legacy_checkpoint(path)
    assert not marker.exists()


def test_refuses_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "short.pth"
    path.write_bytes(checkpoint_bytes(STATE)[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_legacy_checkpoint(path)


def test_refuses_files_of_other_formats(tmp_path: Path) -> None:
    binary = tmp_path / "noise.pth"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="cannot read the checkpoint's magic number"):
        read_legacy_checkpoint(binary)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(ValueError, match="expected a legacy-format PyTorch checkpoint"):
        read_legacy_checkpoint(other)
