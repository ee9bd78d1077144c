"""Uploading a causal_lm version: a Hugging Face causal-LM folder as a zip or tar.

What can be seen without torch is checked here, in the API, before anything is loaded:
the archive is unpacked with ``core.archives`` (no traversal, links, bombs); pickle
weights (``pytorch_model.bin``, ``*.pt``...), Python files, ``auto_map`` or
``trust_remote_code`` in ``config.json``/``tokenizer_config.json``, a missing config,
weights or tokenizer are refused; safetensors headers are read as the JSON they start
with (shapes, offsets inside the file), and a tokenizer with more ids than the
embeddings have rows is refused. What needs torch (building the model from its config,
loading the weights into it, the tokenizer transformers builds) runs in a child process,
``workers.engine.lm.upload_tool``, whose refusal is answered as a 422 too.

An uploaded version's lineage is unknown (no training samples are recorded), like an
uploaded classifier's: it cannot be unlearned from, a deletion request names it as of
unknown lineage, and fine-tuning it (``parent_version_id``) gives versions whose lineage
is that version plus their samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts.causal_lm import LM_FOLDER_FORMAT, LM_FOLDER_UPLOAD, LMArchitecture
from core.archives import ArchiveError, NotAnArchive, extract_tree
from core.errors import Unprocessable

# Checking a folder loads the model: SmolLM2-size models take tens of seconds on a CPU.
VALIDATE_TIMEOUT_S = 300
MAX_ARCHIVE_FILES = 1000
MAX_ARCHIVE_BYTES = 20 * 2**30
# Weights only pickle can read: loading one can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
# Names of the input-embedding matrix in the causal LMs transformers ships.
EMBEDDING_SUFFIXES = (
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "embed_in.weight",
    "tok_embeddings.weight",
)
SAFETENSORS_HEADER_MAX = 100 * 2**20
FIELD = "checkpoint"


def _refuse(message: str) -> Unprocessable:
    return Unprocessable(message, field=FIELD)


def unpack(archive: Path, dest: Path) -> Path:
    """The archive's folder (its root, or its single top folder holding config.json)."""
    try:
        extract_tree(archive, dest, max_files=MAX_ARCHIVE_FILES, max_bytes=MAX_ARCHIVE_BYTES)
    except NotAnArchive as exc:
        raise _refuse(
            "a causal_lm version is uploaded as a zip or tar of a Hugging Face model folder "
            "(config.json, *.safetensors, tokenizer files); this is neither"
        ) from exc
    except ArchiveError as exc:
        raise _refuse(str(exc)) from exc
    root = dest.resolve()
    if (root / "config.json").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/config.json"))
    if len(found) == 1:
        return found[0]
    raise _refuse(
        "the archive has no config.json at its top or in a single top folder: "
        "archive the folder save_pretrained wrote"
    )


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(f"{path.name} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _refuse(f"{path.name} must hold a JSON object")
    return data


def safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensors a safetensors file declares (name -> dtype, shape, offsets), read
    from its JSON header alone and checked to lie inside the file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        length = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if length < 2 or length > min(SAFETENSORS_HEADER_MAX, size - 8):
            raise _refuse(f"{path.name} is not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _refuse(f"{path.name} is not a safetensors file: {exc}") from exc
    if not isinstance(header, dict):
        raise _refuse(f"{path.name} is not a safetensors file (its header is not an object)")
    data_bytes = size - 8 - length
    tensors: dict[str, dict[str, Any]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        valid = (
            isinstance(shape, list)
            and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_bytes
        )
        if not valid:
            raise _refuse(f"{path.name}: tensor {name!r} has a malformed or out-of-file entry")
        tensors[name] = entry
    if not tensors:
        raise _refuse(f"{path.name} holds no tensors")
    return tensors


def tokenizer_size(folder: Path) -> int | None:
    """How many ids the tokenizer can produce (from tokenizer.json or vocab.json with
    added_tokens.json); None when only a binary tokenizer (tokenizer.model) is given."""
    ids: list[int] = []
    count = 0
    if (folder / "tokenizer.json").is_file():
        data = _json_object(folder / "tokenizer.json")
        vocab = (data.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            count = len(vocab)
            ids += [v for v in vocab.values() if isinstance(v, int)]
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...], ids by position
            count = len(vocab)
        ids += [
            t["id"]
            for t in data.get("added_tokens") or []
            if isinstance(t, dict) and isinstance(t.get("id"), int)
        ]
    elif (folder / "vocab.json").is_file():
        vocab = _json_object(folder / "vocab.json")
        count = len(vocab)
        ids += [v for v in vocab.values() if isinstance(v, int)]
        if (folder / "added_tokens.json").is_file():
            added = _json_object(folder / "added_tokens.json")
            ids += [v for v in added.values() if isinstance(v, int)]
    else:
        return None
    return max(count, max(ids, default=-1) + 1)


def inspect_folder(folder: Path) -> dict[str, Any]:
    """Every torch-free check of an uploaded folder; what it found (for the version's
    config) when it passes, a 422 naming the problem when not."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    names = [p.relative_to(folder).as_posix() for p in files]
    pickles = [n for n in names if n.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise _refuse(
            f"pickle weight files are refused ({', '.join(pickles[:5])}): loading them can "
            "run code. Save the model with safetensors (save_pretrained(..., "
            "safe_serialization=True)) and upload that folder"
        )
    code = [n for n in names if n.endswith(".py")]
    if code:
        raise _refuse(
            f"the folder holds Python code ({', '.join(code[:5])}); remote code is never "
            "run: upload a model transformers supports natively"
        )
    config = _json_object(folder / "config.json")
    for name in ("config.json", "tokenizer_config.json"):
        data = config if name == "config.json" else None
        if data is None and (folder / name).is_file():
            data = _json_object(folder / name)
        for key in ("auto_map", "trust_remote_code"):
            if data is not None and data.get(key):
                raise _refuse(
                    f"{name} has {key}: the model asks for its own Python code, which is "
                    "never run; upload a model transformers supports natively"
                )
    if not isinstance(config.get("model_type"), str):
        raise _refuse("config.json has no model_type: transformers cannot tell what model it is")
    architectures = config.get("architectures") or []
    if architectures and not any(str(a).endswith("ForCausalLM") for a in architectures):
        raise _refuse(
            f"config.json declares {', '.join(map(str, architectures))}, not a causal "
            "language model (*ForCausalLM)"
        )
    weights = [p for p in files if p.name.endswith(".safetensors")]
    if not weights:
        raise _refuse("the folder has no .safetensors weights")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise _refuse(
            f"the folder has no tokenizer ({' or '.join(TOKENIZER_FILES)}): save the "
            "tokenizer with the model (tokenizer.save_pretrained(folder))"
        )
    tensors: dict[str, dict[str, Any]] = {}
    for path in weights:
        tensors.update(safetensors_header(path))
    rows = next(
        (
            entry["shape"][0]
            for name, entry in sorted(tensors.items())
            if name.endswith(EMBEDDING_SUFFIXES) and len(entry["shape"]) == 2
        ),
        None,
    )
    vocab = config.get("vocab_size")
    if rows is not None and isinstance(vocab, int) and vocab != rows:
        raise _refuse(
            f"config.json says vocab_size {vocab} but the embeddings have {rows} rows: "
            "the weights do not belong to this config"
        )
    tokens = tokenizer_size(folder)
    if rows is not None and tokens is not None and tokens > rows:
        raise _refuse(
            f"the tokenizer has {tokens} tokens but the model only {rows} embedding rows: "
            "they do not belong together"
        )
    return {
        "files": names,
        "model_type": config["model_type"],
        "tensors": len(tensors),
        "embedding_rows": rows,
        "tokenizer_size": tokens,
    }


def load_in_child(folder: Path, output: Path) -> dict[str, Any]:
    """The torch-side check (``workers.engine.lm.upload_tool``): its report, or a 422
    with its message."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "workers.engine.lm.upload_tool"]
    try:
        proc = subprocess.run(
            [*command, "--folder", str(folder), "--output", str(output)],
            capture_output=True,
            text=True,
            timeout=VALIDATE_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise _refuse(
            f"loading the model took over {VALIDATE_TIMEOUT_S} s; upload a smaller model"
        ) from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"the LM upload tool gave no report (exit {proc.returncode}): {proc.stderr[-500:]}"
        )
    report: dict[str, Any] = json.loads(lines[-1])
    if not report.get("ok"):
        raise _refuse(report.get("error") or "the folder cannot be loaded as a causal LM")
    return report


def check_architecture(architecture: dict[str, Any]) -> LMArchitecture:
    """Only a model registered with ``base: uploaded`` takes uploaded versions: the
    others' versions are fine-tuned here from the base they name."""
    arch = LMArchitecture.model_validate(architecture)
    if arch.base != "uploaded":
        raise Unprocessable(
            f"this causal_lm model fine-tunes its {arch.base} base (train jobs make its "
            "versions); register a model with architecture.base = 'uploaded' to upload "
            f"a {LM_FOLDER_UPLOAD} folder",
            field="model_id",
        )
    return arch


def prepare(archive: Path, work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Unpack and check ``archive`` under ``work``: the version's checkpoint and
    ``hf_files.json``, and the config it records (format, what was found)."""
    folder = unpack(archive, work / "unpacked")
    found = inspect_folder(folder)
    output = work / "version"
    report = load_in_child(folder, output)
    info = {**found, **report["info"]}
    config = {
        "format": LM_FOLDER_FORMAT,
        "hf_model": info,
        "num_parameters": info.get("num_parameters"),
        # What later fine-tunes of this version record as their base.
        "base": {"name": "uploaded", "version_id": None, "sha256": report["sha256"]},
    }
    return output / "model.safetensors", output / "hf_files.json", config
