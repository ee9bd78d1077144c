"""Let PyPI's torchvision import beside the CPU build of torch.

PyPI only carries torchvision's CUDA build: its C extension (``_C.so``) links
``libtorch_cuda.so``, which the CPU torch wheel lacks, so the extension does not load.
torchvision tolerates that for every op except two: ``_meta_registrations`` registers
fake kernels for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally and the
import dies with "operator torchvision::nms does not exist". Because transformers,
diffusers and timm import torchvision whenever it is installed, one failing import
breaks them all.

:func:`install` adds an import hook (torch-free until torchvision itself is imported):
right before ``torchvision._meta_registrations`` runs, once torchvision has tried to load
its extension, it declares the schemas of those two ops when the extension did not. The
classification models never call them; a detection op called without the extension
still fails with torchvision's own "Couldn't load custom C++ ops" error. Where the
extension loads (a CUDA torch, or a CPU build of torchvision), the hook does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

_TARGET = "torchvision._meta_registrations"
# Kept alive for the life of the process: dropping a Library removes its definitions.
_libraries: list[Any] = []


def _declare_missing_ops() -> None:
    """Declare nms/qnms when torchvision's C extension did not load."""
    import torch
    import torchvision.extension

    if torchvision.extension._has_ops():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        if not hasattr(torch.ops.torchvision, op):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _libraries.append(lib)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        _declare_missing_ops()
        self._inner.exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (idempotent; imports nothing heavy)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
