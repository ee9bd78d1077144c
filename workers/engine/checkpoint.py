"""Checkpoint files: our own safetensors format, and careful reading of external ones.

Our checkpoints are safetensors (no code execution on load, content-addressable by
sha256) with the architecture config JSON in the metadata, so a file alone is enough to
rebuild the network. External checkpoints may also be PyTorch pickles; those are only
ever opened with ``weights_only=True``, which refuses anything but tensors and plain
containers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from contracts.classifier import ZOO_ARCHITECTURES, ArchitectureConfig
from workers.engine.errors import CheckpointError, CheckpointMismatch
from workers.engine.nets import expected_state_shapes

CONFIG_METADATA_KEY = "expunge_config"
# Wrapper keys used by common training frameworks (nanoGPT, Lightning, hand-rolled loops).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP and torch.compile
_SHOW = 5  # how many offending keys an error message lists per kind

PathLike = str | os.PathLike[str]


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file, read in chunks so large checkpoints do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    path: PathLike, state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> str:
    """Write ``state_dict`` as safetensors with ``config`` in the metadata; return its sha256.

    The file is written next to its destination and renamed into place, so a crash never
    leaves a half-written checkpoint under the final name.
    """
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            kind = type(value).__name__
            raise CheckpointError(f"state dict value {key!r} is a {kind}, not a tensor")
        # Clone so that tied or overlapping tensors never share storage (safetensors refuses).
        tensors[key] = value.detach().to("cpu").contiguous().clone()
    try:
        metadata = {CONFIG_METADATA_KEY: json.dumps(dict(config), sort_keys=True)}
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint config is not JSON-serialisable: {exc}") from exc
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata=metadata)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return sha256_file(target)


def load_checkpoint(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save_checkpoint``: (state dict, config)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
        state_dict = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"not a readable safetensors checkpoint: {path} ({exc})") from exc
    raw = metadata.get(CONFIG_METADATA_KEY)
    try:
        config = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path} has corrupt config metadata: {exc}") from exc
    return state_dict, config


def _looks_like_safetensors(path: PathLike) -> bool:
    """A safetensors file starts with a little-endian u64 header length, then JSON."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and header_len > 1


def _unwrap(obj: Any) -> Any:
    """Peel off ``{"state_dict": ...}``-style wrappers (at most a few levels)."""
    for _ in range(3):
        if not isinstance(obj, Mapping):
            return obj
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        inner = next(
            (obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None
        )
        if inner is None:
            return obj
        obj = inner
    return obj


def _strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a prefix every key shares (``module.`` from DataParallel, ``_orig_mod.``)."""
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def _torch_load_reason(exc: Exception) -> str:
    """A short reason for a refused ``torch.load``.

    torch's own messages suggest retrying with ``weights_only=False``, which is exactly the
    advice a user uploading a file must not be given, so we say what was found instead.
    """
    text = str(exc)
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found:
        return f"contains a pickled Python object ({found.group(1)}), not just tensors"
    if isinstance(exc, EOFError) or "Ran out of input" in text:
        return "is empty or truncated"
    if "zip archive" in text:
        return "is a corrupt or truncated PyTorch archive"
    if "Unsupported operand" in text or "invalid load key" in text:
        return "is not a PyTorch or safetensors file"
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"could not be read: {first_line[:200]}"


def read_external_checkpoint(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a user-supplied checkpoint without ever executing code from it.

    Accepts safetensors, or a PyTorch file holding a plain state dict (possibly wrapped as
    ``{"state_dict": ...}`` / ``{"model": ...}``). Anything else raises ``CheckpointError``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if _looks_like_safetensors(path):
        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(
                f"not a checkpoint: {path.name} is a truncated or corrupt safetensors file ({exc})"
            ) from exc
    else:
        try:
            # torch warns about unusual pickle protocols; for a refused file that is noise.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"not a checkpoint: {path.name} {_torch_load_reason(exc)} (only safetensors or "
                "a plain state dict loadable with weights_only=True are accepted)"
            ) from exc
    obj = _unwrap(obj)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"not a checkpoint: {path.name} holds a {type(obj).__name__}, not a state dict"
        )
    if not obj:
        raise CheckpointError(f"not a checkpoint: {path.name} holds an empty state dict")
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"not a state dict: {path.name} entry {key!r} holds a "
                f"{type(value).__name__}, not a tensor"
            )
        state_dict[key] = value
    return _strip_prefixes(state_dict)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]],
    state_dict: Mapping[str, torch.Tensor],
    subject: str,
) -> None:
    """Raise ``CheckpointMismatch`` naming every key that does not fit ``expected`` (key ->
    shape); ``subject`` opens the message (what the state dict was checked against).

    The one validator of every family: each builds its expected shapes (on the meta
    device, nothing allocated) and describes its architecture.
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(shape))
        for k, shape in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if mismatched:
        shapes = [
            f"{k} checkpoint {list(got)} vs expected {list(want)}" for k, got, want in mismatched
        ]
        parts.append(f"{len(mismatched)} shape mismatch(es): {_listing(shapes)}")
    raise CheckpointMismatch(
        f"{subject}: " + "; ".join(parts),
        missing=missing,
        unexpected=unexpected,
        mismatched=mismatched,
    )


def validate_state_dict(arch: ArchitectureConfig, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``CheckpointMismatch`` naming what does not fit ``arch``; return if all fits."""
    if arch.name in ZOO_ARCHITECTURES:  # the library's own key names are accepted too
        from workers.engine.zoo import canonical_keys

        state_dict = canonical_keys(dict(state_dict))
    check_state_dict(
        expected_state_shapes(arch),
        state_dict,
        f"checkpoint does not fit architecture {arch.name!r} "
        f"(num_classes={arch.num_classes}, in_channels={arch.in_channels}, "
        f"input_size={list(arch.input_size)}, width={arch.width})",
    )
