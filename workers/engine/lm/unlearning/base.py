"""The contract every language-model (``causal_lm``) unlearning method follows, and its
registry.

Torch-free on purpose, like ``workers.engine.unlearning.base``: the API lists the methods
(``describe_lm_methods()``) and validates job params against each method's ``Params``
without importing torch or transformers. Method files keep their torch imports inside
functions; the shared torch machinery is ``workers.engine.lm.unlearning.common``.

A method receives a Hugging Face causal LM that is already loaded (the fine-tune to
unlearn from, or for ``retrain`` the base it was fine-tuned from), its tokenizer and the
forget / retain records, and updates the model in place. Costs are counted in sequence
passes (one forward + backward of one record), the unit the fine-tune spends too, so a
default never costs more than ``budget_fraction`` of the fine-tune (the classifier
methods' ``Budget``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.causal_lm import LoraParams
from contracts.methods.base import (
    DEFAULT_BUDGET_FRACTION,
    Budget,
    InvalidMethodParams,
    UnknownMethod,
)
from workers.engine.errors import EngineError, TrainingDiverged

if TYPE_CHECKING:
    from workers.engine.lm.data import TextRecord
    from workers.engine.training import Callbacks

__all__ = [
    "DEFAULT_IDK_ANSWERS",
    "LM_METHODS",
    "Budget",
    "InvalidMethodParams",
    "LMMethodParams",
    "LMUnlearnData",
    "LMUnlearnResult",
    "LMUnlearningMethod",
    "UnknownMethod",
    "LMUnlearningDiverged",
    "UnsupportedRecords",
    "describe_lm_methods",
    "get_lm_method",
    "register_lm_method",
]

_DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?|mps)$"

# Refusals the IdK methods train forget questions towards when the request brings none.
# Plain and varied on purpose: one fixed string would teach a single token sequence, which
# is easy to spot and easy to undo.
DEFAULT_IDK_ANSWERS: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information about that.",
    "I can't answer that question.",
    "That is not something I know.",
    "I don't have that information.",
    "I'm afraid I can't help with that.",
    "Sorry, I don't know the answer.",
)


# --------------------------------------------------------------------------- errors


class LMUnlearningDiverged(TrainingDiverged):
    """The loss went NaN/inf, or the retain NLL rose above ``retain_loss_ceiling``.

    Either way the weights are no longer worth keeping, so the job fails instead of
    producing a model version that forgot everything.
    """


class UnsupportedRecords(EngineError):
    """The method cannot work on these records (IdK needs questions to refuse)."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LMUnlearnData:
    """Already-resolved records of one run: what to forget and what to keep.

    The runner turns a deletion request (a person, some samples) into these lists; a
    method never sees the database. ``idk`` overrides the refusals the IdK methods use.
    """

    forget: list[TextRecord]
    retain: list[TextRecord]
    idk: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.forget:
            raise EngineError("the forget set is empty: there is nothing to unlearn")
        if not self.retain:
            raise EngineError("the retain set is empty")
        clash = {r.sample_id for r in self.forget} & {r.sample_id for r in self.retain}
        if clash:
            raise EngineError(f"samples {sorted(clash)[:5]} are both forgotten and retained")
        if self.idk is not None:
            answers = [str(a).strip() for a in self.idk]
            if not answers or not all(answers):
                raise EngineError("idk answers must be non-empty strings")
            object.__setattr__(self, "idk", answers)


@dataclass
class LMUnlearnResult:
    """What a method hands back: the model (updated in place, or a merged LoRA model that
    replaces it), summary metrics and a human-readable log."""

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- params


def epochs_field(walks: str, reference: int) -> Any:
    """The ``epochs`` field: empty means "as many as the budget buys"."""
    return Field(
        None,
        ge=1,
        le=1000,
        description=(
            f"Passes over the {walks}. Empty: as many as budget_fraction of the fine-tune's "
            f"own training allows, at most {reference} (the reference count); a number "
            "given here wins over the budget."
        ),
    )


class LMMethodParams(BaseModel):
    """Options every iterative language-model method accepts; subclasses re-declare
    defaults and add their own knobs."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds batch order and any noise.")
    device: str = Field(
        "auto",
        pattern=_DEVICE_PATTERN,
        description="torch device; 'auto' uses CUDA when available, else CPU.",
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Records per optimizer step.")
    max_length: int = Field(
        256, ge=8, le=32768, description="Tokens per record; longer records are cut."
    )
    epochs: int | None = epochs_field("forget set", 5)
    budget_fraction: float = Field(
        DEFAULT_BUDGET_FRACTION,
        gt=0,
        le=1,
        description=(
            "Without explicit epochs: spend at most this share of the fine-tune's own "
            "training (its epochs x its records, in sequence passes)."
        ),
    )
    lr: float = Field(1e-5, gt=0, le=1, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this (empty: no clipping)."
    )
    lora: LoraParams | None = Field(
        None,
        description=(
            "Train a LoRA adapter instead of every weight (cheaper on big models); merged "
            "into the model at the end."
        ),
    )
    retain_loss_ceiling: float | None = Field(
        None,
        gt=0,
        description=(
            "Fail with UnlearningDiverged if the mean answer NLL on a retain probe rises "
            "above this (nats per token): a run that wrecks the model makes no version."
        ),
    )
    retain_probe_size: int = Field(
        16, ge=1, le=10_000, description="Retain records used for the ceiling check."
    )
    probe_every_steps: int = Field(
        25, ge=1, description="Log the loss and check the ceiling every this many steps."
    )


def retain_weight_field(default: float) -> Any:
    """The weight of the retain NLL term (0 turns it off, and its cost with it)."""
    return Field(
        default,
        ge=0,
        le=1000,
        description=(
            "Weight of the NLL on retain records added to every step (0: no retain term; "
            "each step then costs one batch less)."
        ),
    )


# --------------------------------------------------------------------------- methods


class LMUnlearningMethod(ABC):
    """One language-model unlearning method. Subclasses set the class attributes and
    ``unlearn``; the runner calls ``run``."""

    name: ClassVar[str]
    family: ClassVar[Literal["causal_lm"]] = "causal_lm"
    exact: ClassVar[bool] = False
    paper: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = LMMethodParams
    # The reference epoch count: used when the fine-tune's recipe is unknown, and the
    # most a budget buys.
    default_epochs: ClassVar[int] = 5
    # A frozen copy of the model before unlearning (NPO, IdK-DPO, RMU's retain target).
    needs_reference: ClassVar[bool] = False
    # Sequence passes per forget record per epoch, beyond the forget pass itself: a retain
    # batch per forget batch adds 1, a forward-only reference pass adds 1/3.
    extra_passes_per_forget: ClassVar[float] = 0.0

    # ------------------------------------------------------------------ cost model

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sequence passes of one epoch (an epoch walks the forget set)."""
        return n_forget * (1.0 + self.extra_passes_per_forget)

    def budget(
        self,
        params: BaseModel | Mapping[str, Any] | None,
        n_forget: int,
        n_retain: int,
        train_epochs: float | None,
    ) -> Budget:
        """The epochs this run takes and what it costs against the fine-tune.

        ``train_epochs`` is the fine-tune recipe's epoch count (None if unknown): the
        fine-tune cost ``train_epochs x (forget + retain)`` passes, a re-fine-tune
        ``train_epochs x retain``.
        """
        parsed = self.parse_params(params)
        original = train_epochs * (n_forget + n_retain) if train_epochs else None
        retrain = train_epochs * n_retain if train_epochs else None
        if self.exact:
            passes = float(train_epochs or 1) * n_retain
            return Budget(None, None, passes, original, retrain, "exact")
        per_epoch = max(self.epoch_passes(parsed, n_forget, n_retain), 1e-9)
        explicit = getattr(parsed, "epochs", None)
        if explicit is not None:
            epochs, source = int(explicit), "explicit"
        elif original is None:
            epochs, source = self.default_epochs, "reference"
        else:
            fraction = float(getattr(parsed, "budget_fraction", DEFAULT_BUDGET_FRACTION))
            # A forget walker always makes at least one pass over the forget set.
            epochs = max(1, min(int(fraction * original // per_epoch), self.default_epochs))
            source = "budget"
        return Budget(epochs, None, epochs * per_epoch, original, retrain, source)  # type: ignore[arg-type]

    def parse_params(self, params: BaseModel | Mapping[str, Any] | None) -> Any:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        if params is None:
            return self.Params()
        if isinstance(params, self.Params):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return self.Params.model_validate(dict(params))
        except ValidationError as exc:
            raise InvalidMethodParams(f"invalid params for {self.name}: {exc}") from exc

    def run(
        self,
        model: Any,
        tokenizer: Any,
        data: LMUnlearnData,
        params: BaseModel | Mapping[str, Any] | None = None,
        callbacks: Callbacks | None = None,
        reference: Any | None = None,
        train_params: Any | None = None,
    ) -> LMUnlearnResult:
        """Validate params, size the run from the budget, then unlearn.

        ``reference`` is a frozen copy of the model before unlearning for the methods that
        need one (the method makes it when not given); ``train_params`` is the fine-tune's recipe
        (an ``LMTrainParams``): it sizes the budget, and ``retrain`` replays it.
        """
        parsed = self.parse_params(params)
        if callbacks is None:
            from workers.engine.training import Callbacks

            callbacks = Callbacks()
        # A recipe without explicit epochs (an uploaded model) says nothing about its cost.
        fields_set = getattr(train_params, "model_fields_set", None)
        known = train_params is not None and (fields_set is None or "epochs" in fields_set)
        budget = self.budget(
            parsed,
            len(data.forget),
            len(data.retain),
            float(train_params.epochs) if known and train_params is not None else None,
        )
        if budget.epochs is not None and "epochs" in type(parsed).model_fields:
            parsed = parsed.model_copy(update={"epochs": budget.epochs})
        note = budget.note(self.name)
        callbacks.on_log(note)
        result = self.unlearn(model, tokenizer, data, parsed, callbacks, reference, train_params)
        result.log.insert(0, note)
        result.metrics["estimated_passes"] = float(budget.passes)
        if budget.cost_fraction is not None:
            result.metrics["estimated_cost_fraction"] = float(budget.cost_fraction)
        return result

    @abstractmethod
    def unlearn(
        self,
        model: Any,
        tokenizer: Any,
        data: LMUnlearnData,
        params: Any,
        callbacks: Callbacks,
        reference: Any | None = None,
        train_params: Any | None = None,
    ) -> LMUnlearnResult:
        """The method itself; ``params`` is an instance of ``self.Params`` with its
        epochs resolved."""


# --------------------------------------------------------------------------- registry

LM_METHODS: dict[str, type[LMUnlearningMethod]] = {}


def register_lm_method(cls: type[LMUnlearningMethod]) -> type[LMUnlearningMethod]:
    """Class decorator adding a method to ``LM_METHODS`` under ``cls.name``."""
    for attr in ("name", "paper"):
        if not getattr(cls, attr, None):
            raise TypeError(f"{cls.__name__} must set a non-empty class attribute {attr!r}")
    if cls.name in LM_METHODS and LM_METHODS[cls.name] is not cls:
        raise TypeError(f"language-model method name {cls.name!r} is already registered")
    LM_METHODS[cls.name] = cls
    return cls


def get_lm_method(name: str) -> LMUnlearningMethod:
    """An instance of the language-model method registered under ``name``."""
    try:
        return LM_METHODS[name]()
    except KeyError:
        known = ", ".join(sorted(LM_METHODS))
        raise UnknownMethod(
            f"unknown language-model unlearning method {name!r}; known: {known}"
        ) from None


def describe_lm_methods(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Public description of every language-model method, sorted by name."""
    chosen = sorted(LM_METHODS.values(), key=lambda c: c.name)
    if names is not None:
        chosen = [c for c in chosen if c.name in set(names)]
    return [
        {
            "name": cls.name,
            "family": cls.family,
            "exact": cls.exact,
            "paper": cls.paper,
            "needs_reference": cls.needs_reference,
            "summary": (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "params_schema": cls.Params.model_json_schema(),
        }
        for cls in chosen
    ]
