"""Bring-your-own classifiers: any torchvision or timm classification model by name.

The library's model is wrapped as a :class:`~workers.engine.nets.Classifier` under
``net``: the first convolution is rebuilt for ``in_channels`` when it differs from the
library's 3, the classifier head is sized to ``num_classes``, and ``features`` returns
what the head sees (its input), so methods that probe features or touch the head work
as on the built-in networks. Nothing is downloaded: torchvision builds with
``weights=None`` and timm with ``pretrained=False``; a user's weights come from their
uploaded checkpoint, whose keys may be the library's own (``fc.weight``) or ours
(``net.fc.weight``).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch
import torch.nn as nn

import core.torchvision_compat
from contracts.classifier import ZOO_ARCHITECTURES, ArchitectureConfig
from workers.engine.nets import Classifier

core.torchvision_compat.install()

PREFIX = "net."


def _first_conv(net: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


def _set_submodule(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    parent._modules[leaf] = module


def _adapt_channels(net: nn.Module, in_channels: int, model: str) -> None:
    """Rebuild the stem convolution for ``in_channels`` (1 for MNIST-like data)."""
    found = _first_conv(net)
    if found is None:
        raise ValueError(f"{model} has no Conv2d stem to adapt to in_channels={in_channels}")
    name, conv = found
    if conv.in_channels == in_channels:
        return
    if conv.groups != 1:
        raise ValueError(f"{model}'s stem convolution is grouped; in_channels cannot change")
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    _set_submodule(net, name, new)


def _head_path(net: nn.Module, num_classes: int, model: str) -> str:
    """Dotted path of the last ``nn.Linear`` producing ``num_classes`` outputs."""
    found = [
        name
        for name, m in net.named_modules()
        if isinstance(m, nn.Linear) and m.out_features == num_classes
    ]
    if not found:
        raise ValueError(
            f"{model} has no nn.Linear classifier head (e.g. squeezenet's is a convolution); "
            "the unlearning methods need one: pick another model"
        )
    return found[-1]


def _build_torchvision(arch: ArchitectureConfig) -> nn.Module:
    import torchvision

    model = str(arch.model)
    kwargs: dict[str, object] = {"weights": None, "num_classes": arch.num_classes}
    if model.startswith("vit_"):
        h, w = arch.input_size
        if h != w:
            raise ValueError(f"{model} needs square input, got input_size={[h, w]}")
        kwargs["image_size"] = h
    if model in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = True
    return torchvision.models.get_model(model, **kwargs)


def _build_timm(arch: ArchitectureConfig) -> nn.Module:
    import timm

    build = functools.partial(
        timm.create_model,
        str(arch.model),
        pretrained=False,
        num_classes=arch.num_classes,
        in_chans=arch.in_channels,
    )
    try:
        return build(img_size=tuple(arch.input_size))
    except TypeError:  # models without a fixed input size take no img_size
        return build()


class ZooClassifier(Classifier):
    """A torchvision/timm model held as ``net``, split into features and head."""

    def __init__(self, arch: ArchitectureConfig) -> None:
        super().__init__(arch)
        if arch.name not in ZOO_ARCHITECTURES or arch.model is None:
            raise ValueError(f"ZooClassifier builds torchvision/timm models, not {arch.name!r}")
        net = _build_torchvision(arch) if arch.name == "torchvision" else _build_timm(arch)
        _adapt_channels(net, arch.in_channels, arch.model)
        self.net = net
        self._head_in_net = _head_path(net, arch.num_classes, arch.model)
        self.head_name = PREFIX + self._head_in_net
        self._register_load_state_dict_pre_hook(_add_prefix, with_module=True)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Run the library's forward with the head swapped out: what the head would see."""
        head = self.head
        _set_submodule(self.net, self._head_in_net, nn.Identity())
        try:
            out = self.net(x)
        finally:
            _set_submodule(self.net, self._head_in_net, head)
        return torch.flatten(out, 1)


def _add_prefix(
    module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *args: object
) -> None:
    """Accept the library's own key names (``fc.weight``) as well as ours."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        if not rest.startswith(PREFIX):
            state_dict[prefix + PREFIX + rest] = state_dict.pop(key)


def canonical_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with the library's key names moved under ``net.``."""
    if all(k.startswith(PREFIX) for k in state_dict):
        return state_dict
    return {k if k.startswith(PREFIX) else PREFIX + k: v for k, v in state_dict.items()}


def _names_module_source() -> str:
    import timm
    import torchvision

    def block(names: list[str]) -> str:
        lines, line = [], "   "
        for n in names:
            piece = f' "{n}",'
            if len(line) + len(piece) > 99:
                lines.append(line)
                line = "   "
            line += piece
        lines.append(line)
        return "\n".join(lines)

    tv = sorted(torchvision.models.list_models(module=torchvision.models))
    tm = sorted(timm.list_models())
    return f'''"""Model names of the torchvision and timm registries, as strings (no torch import).

The API validates ``{{"name": "torchvision" | "timm", "model": ...}}`` against these without
importing torch; ``tests/workers/engine/test_zoo.py`` fails when a pinned-library upgrade
changes the registries. Regenerate with ``python -m workers.engine.zoo --write-names``.
Versions: torchvision {torchvision.__version__.split("+")[0]}, timm {timm.__version__}.
"""

TORCHVISION_MODELS: frozenset[str] = frozenset((
{block(tv)}
))

TIMM_MODELS: frozenset[str] = frozenset((
{block(tm)}
))
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-names", action="store_true", help="rewrite zoo_names.py")
    args = parser.parse_args(argv)
    # The names live in the torch-free contracts package, which validates model names.
    target = Path(__file__).resolve().parents[2] / "contracts" / "zoo_names.py"
    if args.write_names:
        target.write_text(_names_module_source())
        print(f"wrote {target}")
    else:
        sys.stdout.write(_names_module_source())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
