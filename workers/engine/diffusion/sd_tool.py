"""Check an uploaded Stable Diffusion archive in a child process (the API never imports
torch): unpack it safely, check the folder's components and configs, load it with
``StableDiffusionPipeline.from_pretrained(..., local_files_only=True)`` so weights that do
not fit their configs are caught, and write a deterministic tar of the folder.

Prints one JSON line: ``{"ok": true, "sha256": ..., "info": {...}}`` or
``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from workers.engine.checkpoint import sha256_file
from workers.engine.errors import EngineError


def check(source: Path, target: Path) -> dict[str, object]:
    import torch

    from workers.engine.diffusion.prompted import (
        extract_archive,
        inspect_sd_folder,
        load_stable_diffusion,
        pack_folder,
    )

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="expunge-sd-") as tmp:
        folder = extract_archive(source, Path(tmp) / "unpacked")
        info = inspect_sd_folder(folder)
        model = load_stable_diffusion(folder)
        info["num_parameters"] = sum(p.numel() for p in model.unet.parameters())
        pack_folder(folder, target)
    return {"ok": True, "sha256": sha256_file(target), "info": info}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        report = check(args.input, args.output)
    except EngineError as exc:
        report = {"ok": False, "error": str(exc)}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
