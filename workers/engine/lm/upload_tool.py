"""Check an uploaded Hugging Face causal-LM folder in a child process (the API never
imports torch) and write it as a model version's files.

The API has already unpacked the archive safely and refused what it can see without
torch (pickle weights, remote code, missing files, a tokenizer larger than the
embeddings' header says). Here the folder is loaded the way every job loads a model
(``load_folder``: native transformers classes only, safetensors only, the tokenizer
checked against the embeddings), then rewritten as one safetensors checkpoint plus
``hf_files.json`` and rebuilt from those (``from_hf_files``), so a version that passes
is one every job can load.

``python -m workers.engine.lm.upload_tool --folder DIR --output DIR`` prints one JSON
line: ``{"ok": true, "sha256": ..., "info": {...}}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import workers.engine  # noqa: F401  (installs the torchvision hook transformers needs)
from contracts.causal_lm import LM_FOLDER_FORMAT
from workers.engine.checkpoint import save_checkpoint
from workers.engine.errors import EngineError

CHECKPOINT = "model.safetensors"
HF_FILES = "hf_files.json"


def check(folder: Path, output: Path) -> dict[str, Any]:
    """Load, rewrite and reload ``folder``; the report the API records."""
    import torch

    from workers.engine.lm.models import from_hf_files, hf_files, load_folder, weights_of

    torch.set_num_threads(1)
    model, tokenizer = load_folder(folder)
    weights = weights_of(model)
    files = hf_files(model, tokenizer)
    # What every job does with a version: rebuild it from these two files, strictly.
    from_hf_files(files, weights)
    output.mkdir(parents=True, exist_ok=True)
    sha256 = save_checkpoint(output / CHECKPOINT, weights, {"format": LM_FOLDER_FORMAT})
    (output / HF_FILES).write_text(json.dumps(files, sort_keys=True))
    config = model.config
    return {
        "ok": True,
        "sha256": sha256,
        "info": {
            "model_type": config.model_type,
            "architectures": list(config.architectures or [type(model).__name__]),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": int(model.get_input_embeddings().get_parameter("weight").shape[0]),
            "tokenizer_size": len(tokenizer),
            "hidden_size": getattr(config, "hidden_size", None),
            "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        report = check(args.folder, args.output)
    except EngineError as exc:
        report = {"ok": False, "error": str(exc)}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        # transformers' own refusals (a config it cannot build, weights of other shapes).
        report = {"ok": False, "error": f"the folder cannot be loaded as a causal LM: {exc}"}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
