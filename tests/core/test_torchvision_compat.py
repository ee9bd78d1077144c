"""PyPI's torchvision imports beside the CPU torch once core is imported, in a fresh process."""

from __future__ import annotations

import subprocess
import sys

ROOT = __file__.rsplit("/tests/", 1)[0]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_torchvision_and_timm_import_and_run_after_core() -> None:
    code = (
        "import core, torch; torch.set_num_threads(1); import torchvision, timm;"
        "y = torchvision.models.resnet18(num_classes=3)(torch.rand(2, 3, 16, 16));"
        "z = timm.create_model('resnet18d', pretrained=False, num_classes=4);"
        "z = z(torch.rand(2, 3, 16, 16));"
        "assert tuple(y.shape) == (2, 3) and tuple(z.shape) == (2, 4), (y.shape, z.shape)"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-2000:]


def test_installing_the_hook_imports_no_torch() -> None:
    code = "import sys, core; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert _run(code).returncode == 0


def test_a_detection_op_without_the_extension_fails_with_torchvisions_own_error() -> None:
    code = (
        "import core, torch, torchvision, torchvision.extension as e;"
        "import sys; sys.exit(0) if e._has_ops() else None;"
        "torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)"
    )
    result = _run(code)
    assert result.returncode != 0 and "Couldn't load custom C++ ops" in result.stderr
