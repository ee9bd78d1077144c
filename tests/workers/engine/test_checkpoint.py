from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from contracts.classifier import ArchitectureConfig
from workers.engine.checkpoint import (
    load_checkpoint,
    read_external_checkpoint,
    save_checkpoint,
    sha256_file,
    validate_state_dict,
)
from workers.engine.errors import CheckpointError, CheckpointMismatch
from workers.engine.nets import build_network

ARCH = ArchitectureConfig(name="small_cnn", num_classes=4, input_size=(8, 8), width=4)


def _state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_network(ARCH).state_dict()


def test_save_and_load_round_trip_with_sha256(tmp_path: Path) -> None:
    state_dict = _state_dict()
    config = ARCH.model_dump(mode="json")
    path = tmp_path / "v1" / "model.safetensors"
    digest = save_checkpoint(path, state_dict, config)

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    loaded, loaded_config = load_checkpoint(path)
    assert loaded_config == config
    assert ArchitectureConfig.model_validate(loaded_config) == ARCH
    assert set(loaded) == set(state_dict)
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value) and loaded[key].dtype == value.dtype
    # Same content, same digest: checkpoints are content-addressable.
    assert save_checkpoint(tmp_path / "again.safetensors", state_dict, config) == digest
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp left


def test_save_accepts_non_contiguous_and_shared_tensors(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    state_dict = {"a": base.t(), "b": base, "c": base[0]}
    save_checkpoint(tmp_path / "x.safetensors", state_dict, {})
    loaded, config = load_checkpoint(tmp_path / "x.safetensors")
    assert config == {} and torch.equal(loaded["a"], base.t()) and torch.equal(loaded["c"], base[0])


def test_save_rejects_non_tensors_and_unserialisable_config(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a tensor"):
        save_checkpoint(tmp_path / "x.safetensors", {"a": 1}, {})  # type: ignore[dict-item]
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "x.safetensors", {"a": torch.ones(1)}, {"bad": object()})


def test_read_external_plain_wrapped_and_prefixed(tmp_path: Path) -> None:
    state_dict = _state_dict()
    variants = {
        "plain.pt": state_dict,
        "lightning.ckpt": {"state_dict": state_dict, "epoch": 3, "hparams": {"lr": 0.1}},
        "nanogpt.pt": {"model": state_dict, "optimizer": {"state": {}}, "iter_num": 5},
        "dataparallel.pth": {f"module.{k}": v for k, v in state_dict.items()},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp_path / "w.safetensors")
    for name in [*variants, "w.safetensors"]:
        loaded = read_external_checkpoint(tmp_path / name)
        assert set(loaded) == set(state_dict), name
        assert all(torch.equal(loaded[k], state_dict[k]) for k in state_dict), name
        validate_state_dict(ARCH, loaded)


class _Exploit:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_never_executes(tmp_path: Path) -> None:
    # Control: the payload is real, plain unpickling does run the command.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Exploit(control)))
    assert control.exists()

    marker = tmp_path / "pwned"
    for name, payload in {
        "raw.pkl": pickle.dumps(_Exploit(marker)),
        "raw_protocol2.pkl": pickle.dumps(_Exploit(marker), protocol=2),
        "wrapped.pt": None,
    }.items():
        path = tmp_path / name
        if payload is None:
            # The same payload inside a real torch zip archive, next to a real tensor.
            torch.save({"weight": torch.ones(2), "evil": _Exploit(marker)}, path)
        else:
            path.write_bytes(payload)
        with pytest.raises(CheckpointError, match="weights_only=True"):
            read_external_checkpoint(path)
        assert not marker.exists()


def test_full_module_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(build_network(ARCH), path)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        read_external_checkpoint(path)


def test_truncated_safetensors_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, _state_dict(), {})
    data = good.read_bytes()
    for cut in (len(data) // 2, 12):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="safetensors"):
            read_external_checkpoint(bad)
        with pytest.raises(CheckpointError):
            load_checkpoint(bad)


def test_random_bytes_empty_and_missing_files_are_refused(tmp_path: Path) -> None:
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path in (noise, empty, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError):
            read_external_checkpoint(path)


def test_non_tensor_values_and_non_dicts_are_refused(tmp_path: Path) -> None:
    cases = {
        "mixed.pt": {"weight": torch.ones(1), "note": "hello"},
        "tensor.pt": torch.ones(3),
        "list.pt": [torch.ones(1)],
        "empty_dict.pt": {},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match="not a"):
            read_external_checkpoint(tmp_path / name)


def test_validate_state_dict_names_every_kind_of_mismatch() -> None:
    state_dict = dict(_state_dict())
    del state_dict["body.0.0.weight"]
    state_dict["extra.weight"] = torch.zeros(1)
    want = tuple(state_dict["fc.weight"].shape)
    state_dict["fc.weight"] = torch.zeros(9, want[1])
    with pytest.raises(CheckpointMismatch) as info:
        validate_state_dict(ARCH, state_dict)
    error = info.value
    assert error.missing == ["body.0.0.weight"]
    assert error.unexpected == ["extra.weight"]
    assert error.mismatched == [("fc.weight", (9, want[1]), want)]
    message = str(error)
    for fragment in ("1 missing", "body.0.0.weight", "extra.weight", f"[9, {want[1]}]"):
        assert fragment in message


def test_validate_state_dict_truncates_long_lists() -> None:
    other = ArchitectureConfig(name="resnet18", num_classes=4, width=8)
    with pytest.raises(CheckpointMismatch) as info:
        validate_state_dict(other, _state_dict())
    assert len(info.value.missing) > 100
    assert f"{len(info.value.missing)} missing" in str(info.value)
    assert "more)" in str(info.value) and len(str(info.value)) < 2000


def test_checkpoint_config_metadata_is_plain_json(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "m.safetensors"
    save_checkpoint(path, _state_dict(), {"arch": ARCH.model_dump(mode="json"), "step": 3})
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(next(iter(meta.values())))["step"] == 3
