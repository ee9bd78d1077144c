"""How the engine runs a diffusion-erasure method, and the registry of implementations.

What a method *is* (params schemas, paper, families, data needs) is declared in
``contracts.methods.diffusion``; a method file here implements one declaration
(``spec = ...``) and registers with ``@register_diffusion_method``, which refuses an
implementation without a declaration. Method files keep their torch imports inside
``unlearn``; the shared torch machinery is ``...diffusion.unlearning.common``.

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
from typing import TYPE_CHECKING, Any, ClassVar

from contracts.methods import base as contract
from contracts.methods import get_method_spec
from contracts.methods.diffusion import DiffusionMethodParams, DiffusionMethodSpec
from contracts.methods.diffusion import PromptSubset as PromptSubset
from contracts.methods.diffusion import TrainableSubset as TrainableSubset
from workers.engine.errors import EngineError
from workers.engine.unlearning.base import InvalidMethodParams, UnknownMethod

if TYPE_CHECKING:
    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.data import ImageArrays
    from workers.engine.training import Callbacks


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


# --------------------------------------------------------------------------- methods


class DiffusionUnlearningMethod(ABC):
    """One erasure method. Subclasses set ``spec`` (their declaration) and ``unlearn``."""

    spec: ClassVar[DiffusionMethodSpec]
    # Read off the spec when a subclass sets it, so callers can read them off the class.
    name: ClassVar[str]
    # Model families the method's own erasure runs on.
    families: ClassVar[tuple[str, ...]] = ("ddpm",)
    exact: ClassVar[bool] = False
    paper: ClassVar[str]
    needs_forget_images: ClassVar[bool] = False
    needs_retain_images: ClassVar[bool] = False
    Params: ClassVar[type[DiffusionMethodParams]] = DiffusionMethodParams
    # Params on the prompt families when they differ (e.g. no anchor class there).
    ConceptParams: ClassVar[type[DiffusionMethodParams] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        cls.name = spec.name
        cls.families = spec.families
        cls.exact = spec.exact
        cls.paper = spec.paper
        cls.needs_forget_images = spec.needs_forget_images
        cls.needs_retain_images = spec.needs_retain_images
        cls.Params = spec.params
        cls.ConceptParams = spec.concept_params

    def params_class(self, family: str = "ddpm") -> type[DiffusionMethodParams]:
        """The params schema for models of ``family``."""
        return self.spec.params_for(family)

    def parse_params(
        self,
        params: DiffusionMethodParams | Mapping[str, Any] | None,
        family: str = "ddpm",
    ) -> DiffusionMethodParams:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        try:
            parsed: DiffusionMethodParams = self.spec.parse_params(params, family)
        except contract.InvalidMethodParams as exc:
            raise InvalidMethodParams(str(exc)) from exc
        return parsed

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
    """Class decorator adding a method to ``DIFFUSION_METHODS`` under its declaration's
    name; the implementation must carry the contracts' declaration of that name."""
    spec = cls.__dict__.get("spec")
    if not isinstance(spec, DiffusionMethodSpec):
        raise TypeError(f"{cls.__name__} must set 'spec' to its DiffusionMethodSpec")
    try:
        declared = get_method_spec(spec.name, spec.job_families[0])
    except contract.UnknownMethod:
        raise TypeError(f"{cls.__name__}: {spec.name!r} is not declared in contracts") from None
    if declared is not spec:
        raise TypeError(f"{cls.__name__}.spec is not the declaration of {spec.name!r}")
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
