"""Normalise an uploaded checkpoint in a separate process.

``python -m workers.engine.checkpoint_tool --arch '<json>' --input FILE --output OUT``
reads FILE (safetensors or a weights-only PyTorch state dict), checks it against the
architecture, writes it back as our safetensors format and prints exactly one JSON line.
An architecture with ``"family": "ddpm"`` is a ``DiffusionArchitecture``: the file is
checked against the UNet's expected keys and shapes and written as a DDPM checkpoint.
The API runs this as a subprocess so that it never imports torch and never parses an
untrusted file in its own address space.

Exit codes: 0 ok, 2 invalid input (bad arch, unreadable or mismatched checkpoint),
1 anything unexpected (the JSON line still says what).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import torch
from pydantic import ValidationError

from contracts.classifier import ArchitectureConfig
from contracts.ddpm import DiffusionArchitecture
from workers.engine.checkpoint import read_external_checkpoint, save_checkpoint, validate_state_dict
from workers.engine.errors import EngineError
from workers.engine.nets import build_network, count_parameters

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 2


def convert(arch: ArchitectureConfig, input_path: str, output_path: str) -> dict[str, object]:
    """Read, validate and rewrite one checkpoint; return the facts the API records."""
    state_dict = read_external_checkpoint(input_path)
    validate_state_dict(arch, state_dict)
    # Round-trip through the network so the output has our key order and dtypes exactly.
    net = build_network(arch)
    net.load_state_dict(state_dict, strict=True)
    normalised = net.state_dict()
    sha256 = save_checkpoint(output_path, normalised, arch.model_dump(mode="json"))
    return {
        "ok": True,
        "sha256": sha256,
        "size_bytes": os.path.getsize(output_path),
        "num_parameters": count_parameters(arch),
        "tensors": len(normalised),
    }


def convert_ddpm(
    arch: DiffusionArchitecture, input_path: str, output_path: str
) -> dict[str, object]:
    """The DDPM counterpart of ``convert``: keys and shapes must match the UNet exactly."""
    from workers.engine.diffusion.checkpoint import save_ddpm
    from workers.engine.diffusion.models import count_parameters as count_unet_parameters
    from workers.engine.diffusion.models import expected_unet_shapes

    state_dict = read_external_checkpoint(input_path)
    expected = expected_unet_shapes(arch)
    # Our key order, float32 as the UNet is built (validated by save_ddpm).
    normalised = {
        k: state_dict[k].to(torch.float32) if state_dict[k].is_floating_point() else state_dict[k]
        for k in expected
        if k in state_dict
    }
    normalised.update({k: v for k, v in state_dict.items() if k not in expected})
    sha256 = save_ddpm(output_path, arch, normalised)  # CheckpointMismatch names the misfit
    return {
        "ok": True,
        "sha256": sha256,
        "size_bytes": os.path.getsize(output_path),
        "num_parameters": count_unet_parameters(arch),
        "tensors": len(normalised),
    }


def _parse_arch(text: str) -> ArchitectureConfig | DiffusionArchitecture:
    try:
        raw = json.loads(text)
        if isinstance(raw, dict) and raw.get("family") == "ddpm":
            return DiffusionArchitecture.model_validate_json(text)
        return ArchitectureConfig.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'arch'}: {err['msg']}"
            for err in exc.errors()
        )
        raise EngineError(f"invalid architecture config: {problems}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="ArchitectureConfig as JSON")
    parser.add_argument("--input", required=True, help="uploaded checkpoint file")
    parser.add_argument("--output", required=True, help="where to write the .safetensors")
    args = parser.parse_args(argv)
    try:
        arch = _parse_arch(args.arch)
        if isinstance(arch, DiffusionArchitecture):
            report = convert_ddpm(arch, args.input, args.output)
        else:
            report = convert(arch, args.input, args.output)
        code = EXIT_OK
    except EngineError as exc:
        report, code = {"ok": False, "error": str(exc)}, EXIT_INVALID
    except Exception as exc:  # the caller needs a JSON line whatever happens
        report, code = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, EXIT_ERROR
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
