"""Demo data for the embedded default, loaded through the REST API like any user would."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from core.client import ExpungeAPIError, ExpungeClient

log = logging.getLogger("expunge.demo")

DEMO_DATASETS = [
    ("mnist", "mnist", None),
    ("fashion-mnist", "fashion_mnist", None),
    ("orl-faces", "orl_faces", None),
    ("digits", "digits", None),
]
DEMO_MODEL = "demo-mnist-cnn"


def _digit_recognizer_weights() -> Path | None:
    spec = importlib.util.find_spec("digit_recognizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "handwriting_model.pth"
    return path if path.exists() else None


def load_demo(client: ExpungeClient, train_samples: int = 5000) -> dict[str, Any]:
    """Idempotent: skips what exists. Returns the ids it created or found."""
    out: dict[str, Any] = {}
    existing = {d["name"]: d for d in client.datasets(limit=200)["data"]}
    available = {s["name"]: s for s in client.dataset_sources()}
    for name, source, limit in DEMO_DATASETS:
        if name in existing:
            out[name] = existing[name]["id"]
            continue
        if not available.get(source, {}).get("available"):
            log.warning("demo: skipping %s (%s)", name, available.get(source, {}).get("reason"))
            continue
        out[name] = client.create_dataset(name, source, limit=limit)["id"]
        log.info("demo: registered dataset %s", name)

    models = {m["name"]: m for m in client.models(limit=200)["data"]}
    if DEMO_MODEL not in models and "mnist" in out:
        model = client.create_model(
            DEMO_MODEL,
            {
                "name": "small_cnn",
                "num_classes": 10,
                "in_channels": 1,
                "input_size": [28, 28],
                "width": 16,
            },
            description="Small CNN trained on MNIST by the demo loader",
        )
        job = client.train(
            model["id"],
            out["mnist"],
            {"epochs": 1, "batch_size": 64, "lr": 0.05, "max_train_samples": train_samples},
        )
        out["demo_train_job"] = job["id"]
    weights = _digit_recognizer_weights()
    if "digit-recognizer" not in models and weights is not None:
        model = client.create_model(
            "digit-recognizer",
            {
                "name": "mnist_cnn",
                "num_classes": 10,
                "in_channels": 1,
                "input_size": [28, 28],
                "normalize_mean": [0.1307],
                "normalize_std": [0.3081],
            },
            description="Pretrained MNIST CNN from the digit-recognizer-py package",
        )
        try:
            client.upload_checkpoint(model["id"], weights, {"source": "digit-recognizer-py 0.1.0"})
        except ExpungeAPIError as exc:
            log.warning("demo: could not upload the digit-recognizer checkpoint: %s", exc)
    return out
