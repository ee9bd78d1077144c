from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig
from workers.engine.checkpoint import read_external_checkpoint
from workers.engine.data import ImageArrays
from workers.engine.errors import CheckpointMismatch, EngineError
from workers.engine.evaluation import evaluate_classifier, predict, summarize_predictions
from workers.engine.nets import build_network


def test_digit_recognizer_weights_reach_published_accuracy(
    mnist: dict[str, ImageArrays],
    digit_recognizer_weights: Path,
    mnist_cnn_arch: ArchitectureConfig,
) -> None:
    test = mnist["test"].subset(np.arange(2000))
    state_dict = read_external_checkpoint(digit_recognizer_weights)
    scores = evaluate_classifier(mnist_cnn_arch, state_dict, test)
    print(f"digit-recognizer-py on MNIST test[:2000]: accuracy={scores['accuracy']:.4f}")
    assert scores["count"] == 2000
    assert scores["accuracy"] >= 0.97
    assert 0 < scores["loss"] < 0.2
    assert set(scores["per_class_accuracy"]) == {str(d) for d in range(10)}
    # The overall accuracy is the count-weighted mean of the per-class accuracies.
    counts = np.bincount(test.labels, minlength=10)
    weighted = sum(scores["per_class_accuracy"][str(d)] * counts[d] for d in range(10)) / 2000
    assert weighted == pytest.approx(scores["accuracy"])


def test_predict_keeps_sample_order_and_training_mode(tiny: ImageArrays) -> None:
    arch = ArchitectureConfig(name="small_cnn", num_classes=3, input_size=(8, 8), width=4)
    net = build_network(arch)
    net.train()
    logits, labels = predict(net, tiny, arch, batch_size=7)
    assert net.training, "predict must restore the previous mode"
    assert logits.shape == (len(tiny), 3) and logits.dtype == np.float32
    assert np.array_equal(labels, tiny.labels)
    net.eval()
    with torch.no_grad():
        direct = net(torch.from_numpy(tiny.images).permute(0, 3, 1, 2).float() / 255).numpy()
    assert np.allclose(logits, direct, atol=1e-5)


def test_summary_of_known_predictions() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 1, 1, 0])
    scores = summarize_predictions(logits, labels)
    assert scores["accuracy"] == 0.75 and scores["count"] == 4
    assert scores["per_class_accuracy"] == {"0": 1.0, "1": 0.5}
    expected_loss = float(
        torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))
    )
    assert scores["loss"] == pytest.approx(expected_loss)


def test_evaluate_rejects_bad_inputs(tiny: ImageArrays, mnist_cnn_arch: ArchitectureConfig) -> None:
    arch = ArchitectureConfig(name="mlp", num_classes=3, input_size=(8, 8), width=8)
    state_dict = build_network(arch).state_dict()
    with pytest.raises(CheckpointMismatch):
        evaluate_classifier(mnist_cnn_arch, state_dict, tiny)
    two_class = arch.model_copy(update={"num_classes": 2})
    with pytest.raises(EngineError, match="outside 0..1"):
        evaluate_classifier(two_class, build_network(two_class).state_dict(), tiny)
    with pytest.raises(EngineError, match="empty"):
        evaluate_classifier(arch, state_dict, tiny.subset([]))
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="CUDA is not available"):
            evaluate_classifier(arch, state_dict, tiny, device="cuda")
