"""The contract every diffusion-erasure method follows, and its registry.

Torch-free on purpose, like ``workers.engine.unlearning.base``: the API lists the methods
(``describe_diffusion_methods()``) and validates job params against each method's
``Params`` without importing torch or diffusers. Method files keep their torch imports
inside ``unlearn``; the shared torch machinery is ``...diffusion.unlearning.common``.

What is erased here is a *class* of a class-conditional DDPM (a digit, a garment, one
person of a face set): after erasure, asking for that class should no longer give it,
while every other class is generated as before. Only approximate methods besides
``retrain``; what they achieve is measured afterwards by an independent judge
(``workers.engine.diffusion.judge``), never assumed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.engine.errors import EngineError
from workers.engine.unlearning.base import InvalidMethodParams, UnknownMethod

if TYPE_CHECKING:
    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.data import ImageArrays
    from workers.engine.training import Callbacks

_DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?|mps)$"

# Which UNet2DModel parameters a method trains (ESD's ``train_method``). UNet2DModel has
# no cross-attention: the class reaches the network through ``class_embedding``, added to
# the time embedding that every ResNet block reads through its ``time_emb_proj``. Those
# are the layers that read the condition, so they stand in for ESD's cross-attention.
TrainableSubset = Literal["full", "noxattn", "xattn"]
# On UNet2DConditionModel (prompt families) also "kv": only the cross-attention key and
# value projections, Concept Ablation's default.
PromptSubset = Literal["full", "noxattn", "xattn", "kv"]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DiffusionUnlearnData:
    """What an erasure run is given: the classes to erase and, where a method needs them,
    real images of those classes (``forget``) and of the others (``retain``).

    ESD is data-free (it learns from the model's own samples), so both image sets are
    optional here; methods that need them say so through ``needs_forget_images`` /
    ``needs_retain_images`` and are refused up front when they are missing.
    """

    forget_labels: list[int]
    forget: ImageArrays | None = None
    retain: ImageArrays | None = None

    def __post_init__(self) -> None:
        labels = [int(c) for c in self.forget_labels]
        if not labels:
            raise EngineError("forget_labels is empty: there is no class to erase")
        if len(set(labels)) != len(labels):
            raise EngineError(f"forget_labels has duplicates: {labels}")
        object.__setattr__(self, "forget_labels", labels)
        erased = set(labels)
        if self.forget is not None:
            if len(self.forget) == 0:
                raise EngineError("the forget image set is empty")
            stray = sorted({int(c) for c in self.forget.labels} - erased)
            if stray:
                raise EngineError(f"forget images include classes {stray} that are not erased")
        if self.retain is not None:
            if len(self.retain) == 0:
                raise EngineError("the retain image set is empty")
            leaked = sorted({int(c) for c in self.retain.labels} & erased)
            if leaked:
                raise EngineError(f"retain images include erased classes {leaked}")


@dataclass(frozen=True)
class ConceptUnlearnData:
    """What a prompt-family erasure is given: prompts naming the concepts to erase, the
    anchor prompt they should map to, and prompts whose outputs must be kept."""

    prompts: list[str]
    anchor: str = ""
    preserve: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        prompts = [str(p) for p in self.prompts]
        if not prompts:
            raise EngineError("no prompt to erase: the concept scope is empty")
        if len(set(prompts)) != len(prompts):
            raise EngineError(f"concept prompts have duplicates: {prompts}")
        clash = sorted(set(prompts) & set(self.preserve))
        if clash:
            raise EngineError(f"prompts {clash} are both erased and preserved")
        object.__setattr__(self, "prompts", prompts)
        object.__setattr__(self, "preserve", [str(p) for p in self.preserve])


@dataclass
class DiffusionUnlearnResult:
    """New weights, which tensors the method was allowed to change, metrics and log.

    ``trained_keys`` lists the parameters the optimiser could touch (ESD's subsets,
    SalUn's masked tensors); ``None`` means a whole new model (``retrain``). The delta a
    job stores is computed against the parent by ``...diffusion.checkpoint``.
    """

    state_dict: dict[str, torch.Tensor]
    trained_keys: list[str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- params


class DiffusionMethodParams(BaseModel):
    """Options every diffusion method accepts; subclasses re-declare defaults."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds every draw of the run.")
    device: str = Field(
        "auto",
        pattern=_DEVICE_PATTERN,
        description="torch device; 'auto' uses CUDA when available, else CPU.",
    )
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(16, ge=1, le=4096, description="Images per optimizer step.")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    shift_probe_size: int = Field(
        32,
        ge=1,
        le=4096,
        description=(
            "Fixed noisy inputs on which the end-of-run epsilon shift per class is measured "
            "(a cheap signal; the judge's forget rate is the real verdict)."
        ),
    )


# --------------------------------------------------------------------------- methods


class DiffusionUnlearningMethod(ABC):
    """One erasure method. Subclasses set the class attributes and ``unlearn``."""

    name: ClassVar[str]
    family: ClassVar[str] = "ddpm"
    # Model families the method applies to; ddpm-only unless a method says otherwise.
    families: ClassVar[tuple[str, ...]] = ("ddpm",)
    exact: ClassVar[bool] = False
    paper: ClassVar[str]
    needs_forget_images: ClassVar[bool] = False
    needs_retain_images: ClassVar[bool] = False
    Params: ClassVar[type[DiffusionMethodParams]] = DiffusionMethodParams
    # Params on the prompt families when they differ (e.g. no anchor class there).
    ConceptParams: ClassVar[type[DiffusionMethodParams] | None] = None

    def params_class(self, family: str = "ddpm") -> type[DiffusionMethodParams]:
        """The params schema for models of ``family``."""
        if family != "ddpm" and self.ConceptParams is not None:
            return self.ConceptParams
        return self.Params

    def parse_params(
        self,
        params: DiffusionMethodParams | Mapping[str, Any] | None,
        family: str = "ddpm",
    ) -> DiffusionMethodParams:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        cls = self.params_class(family)
        if params is None:
            return cls()
        if isinstance(params, cls):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return cls.model_validate(dict(params))
        except ValidationError as exc:
            raise InvalidMethodParams(f"invalid params for {self.name}: {exc}") from exc

    def check_data(self, arch: DiffusionArchitecture, data: DiffusionUnlearnData) -> None:
        """Refuse classes the model does not have and missing image sets, by name."""
        bad = [c for c in data.forget_labels if not 0 <= c < arch.num_classes]
        if bad:
            raise EngineError(
                f"cannot erase classes {bad}: the model has classes 0..{arch.num_classes - 1}"
            )
        if len(data.forget_labels) >= arch.num_classes:
            raise EngineError("cannot erase every class of the model")
        if self.needs_forget_images and data.forget is None:
            raise EngineError(f"{self.name} needs images of the erased classes (forget set)")
        if self.needs_retain_images and data.retain is None:
            raise EngineError(f"{self.name} needs images of the other classes (retain set)")

    def run(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: DiffusionMethodParams | Mapping[str, Any] | None = None,
        callbacks: Callbacks | None = None,
        train_params: DiffusionTrainParams | None = None,
    ) -> DiffusionUnlearnResult:
        """Validate params and data, then erase. The input state dict is not modified."""
        if "ddpm" not in self.families:
            raise EngineError(
                f"{self.name} needs a prompt-conditioned model "
                f"({' or '.join(self.families)}); a ddpm model has no text cross-attention"
            )
        parsed = self.parse_params(params)
        self.check_data(arch, data)
        if callbacks is None:
            from workers.engine.training import Callbacks

            callbacks = Callbacks()
        return self.unlearn(arch, state_dict, data, parsed, callbacks, train_params)

    def run_concepts(
        self,
        model: Any,
        data: ConceptUnlearnData,
        params: DiffusionMethodParams | Mapping[str, Any] | None = None,
        callbacks: Callbacks | None = None,
    ) -> DiffusionUnlearnResult:
        """Erase prompt concepts from a ``prompted.PromptModel`` (text2image or
        stable_diffusion); the result's state dict is the UNet's. The model is not
        modified."""
        if not set(self.families) - {"ddpm"}:
            raise EngineError(
                f"{self.name} erases classes of ddpm models; it does not take prompts"
            )
        parsed = self.parse_params(params, family="text2image")
        if callbacks is None:
            from workers.engine.training import Callbacks

            callbacks = Callbacks()
        return self.unlearn_concepts(model, data, parsed, callbacks)

    def unlearn_concepts(
        self, model: Any, data: ConceptUnlearnData, params: Any, callbacks: Callbacks
    ) -> DiffusionUnlearnResult:
        """The prompt-family variant; methods that list such a family implement it."""
        raise EngineError(f"{self.name} does not erase prompt concepts")

    @abstractmethod
    def unlearn(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: DiffusionTrainParams | None,
    ) -> DiffusionUnlearnResult:
        """The method itself; ``params`` is an instance of ``self.Params``."""


# --------------------------------------------------------------------------- registry

DIFFUSION_METHODS: dict[str, type[DiffusionUnlearningMethod]] = {}


def register_diffusion_method(
    cls: type[DiffusionUnlearningMethod],
) -> type[DiffusionUnlearningMethod]:
    """Class decorator adding a method to ``DIFFUSION_METHODS`` under ``cls.name``."""
    for attr in ("name", "paper"):
        if not getattr(cls, attr, None):
            raise TypeError(f"{cls.__name__} must set a non-empty class attribute {attr!r}")
    if cls.name in DIFFUSION_METHODS and DIFFUSION_METHODS[cls.name] is not cls:
        raise TypeError(f"diffusion method name {cls.name!r} is already registered")
    DIFFUSION_METHODS[cls.name] = cls
    return cls


def get_diffusion_method(name: str) -> DiffusionUnlearningMethod:
    """An instance of the diffusion method registered under ``name``."""
    try:
        return DIFFUSION_METHODS[name]()
    except KeyError:
        known = ", ".join(sorted(DIFFUSION_METHODS))
        raise UnknownMethod(f"unknown diffusion method {name!r}; known: {known}") from None


def describe_diffusion_methods() -> list[dict[str, Any]]:
    """Public description of every diffusion method, sorted by name."""
    return [
        {
            "name": cls.name,
            "family": cls.family,
            "families": list(cls.families),
            "exact": cls.exact,
            "paper": cls.paper,
            "needs_forget_images": cls.needs_forget_images,
            "needs_retain_images": cls.needs_retain_images,
            "summary": (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "params_schema": cls.Params.model_json_schema(),
            "concept_params_schema": (cls.ConceptParams or cls.Params).model_json_schema(),
        }
        for cls in sorted(DIFFUSION_METHODS.values(), key=lambda c: c.name)
    ]
