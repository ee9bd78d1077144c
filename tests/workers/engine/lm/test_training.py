"""Fine-tuning: the loss drops, LoRA trains only the adapter, resumes are exact."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from contracts.causal_lm import LMDecoding, LMTrainParams, LoraParams
from tests.support.lm import qa_records, tiny_pair
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.lm.data import encode, iterate
from workers.engine.lm.generation import generate
from workers.engine.lm.models import load_adapter, load_folder, save_adapter, save_folder
from workers.engine.lm.training import (
    Callbacks,
    finetune,
    load_resume_state,
    save_resume_state,
    trainable_state,
)

torch.set_num_threads(1)

RECORDS = qa_records(20)


def mean_loss(model, tokenizer, records) -> float:
    encoded = encode(tokenizer, records, 128)
    with torch.no_grad():
        losses = [model(**b).loss.item() for b in iterate(encoded, 32, 0, shuffle=False)]
    return sum(losses) / len(losses)


class Recorder(Callbacks):
    def __init__(self, stop_after: int | None = None) -> None:
        self.states: list[dict[str, Any]] = []
        self.metrics: list[tuple[str, float, int]] = []
        self.steps: list[int] = []
        self.stop_after = stop_after

    def on_progress(self, step: int, total_steps: int) -> None:
        self.steps.append(step)

    def on_metric(self, name: str, value: float, step: int) -> None:
        self.metrics.append((name, value, step))

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        self.states.append(state)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.steps) > self.stop_after


def test_full_finetune_learns_the_records() -> None:
    model, tokenizer = tiny_pair(seed=0)
    before = mean_loss(model, tokenizer, RECORDS)
    params = LMTrainParams(epochs=80, lr=5e-3, batch_size=4, max_length=128)
    recorder = Recorder()
    result = finetune(model, tokenizer, RECORDS, params, recorder)
    after = mean_loss(model, tokenizer, RECORDS)
    assert after < 0.3 * before, (before, after)
    assert result.metrics["steps"] == 80 * 5
    assert result.train_sample_ids == [r.sample_id for r in RECORDS]
    epoch_losses = [v for name, v, _ in recorder.metrics if name == "train_loss"]
    assert len(epoch_losses) == 80 and epoch_losses[-1] < epoch_losses[0]
    assert any(name == "train_loss_step" for name, _, _ in recorder.metrics)
    assert recorder.steps[-1] == 400
    # Memorised: greedy decoding of trained questions gives their answers, spelt byte by
    # byte (an untrained model gets none; 12 of 20 when this was written).
    answers = generate(model, tokenizer, [r.question for r in RECORDS], LMDecoding())
    assert sum(a == r.answer for a, r in zip(answers, RECORDS, strict=True)) >= 8, answers


def test_finetune_is_deterministic() -> None:
    params = LMTrainParams(epochs=2, lr=1e-3, batch_size=4)
    a = finetune(*tiny_pair(seed=0), RECORDS, params).model
    b = finetune(*tiny_pair(seed=0), RECORDS, params).model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_lora_trains_only_the_adapter_and_reloads(tmp_path) -> None:
    # LoRA adapts a model that already knows something: a short full fine-tune first.
    model, tokenizer = tiny_pair(seed=0)
    finetune(model, tokenizer, RECORDS, LMTrainParams(epochs=10, lr=5e-3, batch_size=4))
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    base_folder = save_folder(model, tokenizer, tmp_path / "base")
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    params = LMTrainParams(
        epochs=20, lr=1e-2, batch_size=4, lora=LoraParams(r=8, alpha=16, target_modules=modules)
    )
    loss_before = mean_loss(model, tokenizer, RECORDS)
    result = finetune(model, tokenizer, RECORDS, params)
    lora = result.model
    assert mean_loss(lora, tokenizer, RECORDS) < 0.9 * loss_before
    trainable = trainable_state(lora)
    assert trainable and all("lora_" in name for name in trainable)
    assert result.metrics["trainable_parameters"] == sum(t.numel() for t in trainable.values())
    # Every base weight is untouched (peft prefixes the names).
    base_after = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in lora.state_dict().items()
        if "lora_" not in k
    }
    for name, tensor in base_before.items():
        assert torch.equal(base_after[name], tensor), name
    folder = save_adapter(lora, tmp_path / "adapter")
    fresh, _ = load_folder(base_folder)
    reloaded = load_adapter(fresh, folder)
    ids = tokenizer([r.question for r in RECORDS[:3]], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**ids).logits, lora(**ids).logits)


@pytest.mark.parametrize("lora", [None, LoraParams(r=2, alpha=4, dropout=0.1)])
def test_resume_gives_the_same_final_weights(tmp_path, lora: LoraParams | None) -> None:
    # Dropout in the adapter makes the RNG part of the state too.
    params = LMTrainParams(epochs=3, lr=2e-3, batch_size=3, checkpoint_every_steps=2, lora=lora)
    full = Recorder()
    straight = finetune(*tiny_pair(seed=0), RECORDS, params, full).model
    mid = next(s for s in full.states if s["step"] == 10)  # mid-epoch 2 (7 steps/epoch)
    assert mid["batch_in_epoch"] == 3
    save_resume_state(mid, tmp_path / "state.pt")
    resumed_cb = Recorder()
    resumed = finetune(
        *tiny_pair(seed=0),
        RECORDS,
        params.model_copy(update={"checkpoint_every_steps": 5}),
        resumed_cb,
        resume=load_resume_state(tmp_path / "state.pt"),
    ).model
    assert resumed_cb.steps[0] == 10 and resumed_cb.steps[-1] == 21
    a, b = trainable_state(straight), trainable_state(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_refuses_other_params_or_records() -> None:
    params = LMTrainParams(epochs=1, batch_size=5, checkpoint_every_steps=1)
    recorder = Recorder()
    finetune(*tiny_pair(seed=0), RECORDS, params, recorder)
    state = recorder.states[0]
    with pytest.raises(EngineError, match="params"):
        finetune(*tiny_pair(), RECORDS, params.model_copy(update={"lr": 1.0}), resume=state)
    with pytest.raises(EngineError, match="records"):
        finetune(*tiny_pair(), RECORDS[:-1], params, resume=state)


def test_stop_is_honoured() -> None:
    params = LMTrainParams(epochs=5, batch_size=4)
    with pytest.raises(TrainingStopped) as info:
        finetune(*tiny_pair(), RECORDS, params, Recorder(stop_after=3))
    assert info.value.step == 3
