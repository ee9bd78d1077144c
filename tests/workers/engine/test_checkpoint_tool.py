"""The CLI the API runs in a subprocess; tested as a subprocess, the way it is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from contracts.classifier import ArchitectureConfig
from workers.engine.checkpoint import load_checkpoint, sha256_file

REPO_ROOT = Path(__file__).resolve().parents[3]
MNIST_ARCH = ArchitectureConfig(
    name="mnist_cnn", num_classes=10, normalize_mean=[0.1307], normalize_std=[0.3081]
)


def run_tool(arch_json: str, source: Path, output: Path) -> tuple[int, dict, str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.engine.checkpoint_tool",
            "--arch",
            arch_json,
            "--input",
            str(source),
            "--output",
            str(output),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {result.stdout!r} / {result.stderr}"
    return result.returncode, json.loads(lines[0]), result.stderr


def test_converts_the_digit_recognizer_checkpoint(
    digit_recognizer_weights: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out" / "model.safetensors"
    code, report, stderr = run_tool(MNIST_ARCH.model_dump_json(), digit_recognizer_weights, output)
    assert code == 0, (report, stderr)
    assert report["ok"] is True
    assert report["sha256"] == sha256_file(output)
    assert report["size_bytes"] == output.stat().st_size
    assert report["tensors"] == 10
    original = torch.load(digit_recognizer_weights, map_location="cpu", weights_only=True)
    assert report["num_parameters"] == sum(t.numel() for t in original.values())
    state_dict, config = load_checkpoint(output)
    assert ArchitectureConfig.model_validate(config) == MNIST_ARCH
    assert all(torch.equal(state_dict[k], v) for k, v in original.items())


def test_reports_bad_inputs_with_exit_code_2(
    digit_recognizer_weights: Path, tmp_path: Path
) -> None:
    output = tmp_path / "model.safetensors"
    wrong_arch = ArchitectureConfig(name="small_cnn", num_classes=10).model_dump_json()
    code, report, _ = run_tool(wrong_arch, digit_recognizer_weights, output)
    assert code == 2 and report["ok"] is False
    assert "missing" in report["error"] and "conv_layers.0.weight" in report["error"]
    assert not output.exists()

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02not really a pickle" * 10)
    code, report, _ = run_tool(MNIST_ARCH.model_dump_json(), garbage, output)
    assert code == 2 and report["ok"] is False and "not a checkpoint" in report["error"]

    code, report, _ = run_tool('{"name": "vgg"}', digit_recognizer_weights, output)
    assert code == 2 and "invalid architecture config" in report["error"]
    assert not output.exists()
