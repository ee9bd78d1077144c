"""Uploading a causal_lm version over REST: a Hugging Face folder as a zip or tar becomes
a version every job can load (generated from here), of unknown lineage (not unlearned);
each unsafe or broken folder is a 422 saying what is wrong, from the API's torch-free
checks or, for what needs torch, from the child process that loads the folder."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.jobs.schemas import GenerateJobCreate, TrainJobCreate
from api.jobs.service import create_generate_job, create_train_job
from contracts.causal_lm import LM_FOLDER_FORMAT
from core.lineage import decode_mask
from tests.support.db import version_row
from tests.support.rest import V1
from tests.support.runner import commit_job, run_job


def _folder(root: Path, vocab: int | None = None) -> Path:
    """A tiny llama saved the way save_pretrained saves one (safetensors + tokenizer)."""
    from workers.engine.lm.models import byte_tokenizer, save_folder, tiny_llama

    tokenizer = byte_tokenizer()
    model = tiny_llama(vocab if vocab is not None else tokenizer, seed=1, hidden_size=32)
    return save_folder(model, tokenizer, root)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("lm") / "tiny")


def _zip(folder: Path, top: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, top + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return buffer.getvalue()


def _model(api: Any, base: str = "uploaded") -> dict[str, Any]:
    response = api.post(
        f"{V1}/models",
        json={
            "name": f"hf-{uuid.uuid4().hex[:8]}",
            "family": "causal_lm",
            "architecture": {"base": base},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def _upload(api: Any, model_id: str, data: bytes, name: str = "model.zip") -> Any:
    return api.post(
        f"{V1}/models/{model_id}/versions",
        files={"checkpoint": (name, data, "application/octet-stream")},
    )


def _variant(good: Path, tmp_path: Path, change: Callable[[Path], None]) -> bytes:
    folder = tmp_path / "variant"
    shutil.copytree(good, folder)
    change(folder)
    return _zip(folder)


def _edit_json(path: Path, **updates: Any) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **updates}))


def test_a_folder_uploads_as_a_version_jobs_load(
    api: Any, app: Any, prod_settings: Any, good: Path
) -> None:
    model = _model(api)
    response = _upload(api, model["id"], _tar(good), "tiny.tar.gz")  # in a top folder
    assert response.status_code == 201, response.text
    version = response.json()
    config = version["config"]
    assert config["format"] == LM_FOLDER_FORMAT and version["source"] == "upload"
    assert config["hf_files_key"].endswith("/hf_files.json")
    assert config["hf_model"]["model_type"] == "llama"
    assert config["hf_model"]["embedding_rows"] == config["hf_model"]["tokenizer_size"]
    assert version["dataset_version_id"] is None  # lineage unknown

    # The stored version is what a job loads: a generate job answers from it.
    body = GenerateJobCreate(
        kind="generate",
        model_version_id=version["id"],
        params={"prompts": ["Where was Ada born?"], "max_new_tokens": 4},
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_generate_job, body))
    assert job.metrics["completions"][0]["prompt"] == "Where was Ada born?"

    # Nobody knows what it was trained on: unlearning from it is refused, saying why.
    unlearn = api.post(
        f"{V1}/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": version["id"],
            "method": "npo",
            "forget": {"subject_ids": ["someone"]},
        },
    )
    assert unlearn.status_code == 422 and "was uploaded" in unlearn.json()["detail"]
    lineage = api.get(f"{V1}/model-versions/{version['id']}/lineage").json()
    assert lineage["training_set"] is None

    # Fine-tuned from (parent_version_id, required for an uploaded base), the result's
    # lineage is the uploaded version plus the samples it saw.
    dataset = api.post(
        f"{V1}/datasets",
        json={
            "name": f"fp-{uuid.uuid4().hex[:8]}",
            "source": {"name": "fictitious-people", "limit": 21},
        },
    ).json()
    no_parent = api.post(
        f"{V1}/jobs",
        json={"kind": "train", "model_id": model["id"], "dataset_id": dataset["id"]},
    )
    assert no_parent.status_code == 422 and no_parent.json()["field"] == "parent_version_id"
    train = TrainJobCreate(
        kind="train",
        model_id=model["id"],
        dataset_id=dataset["id"],
        parent_version_id=version["id"],
        params={"epochs": 1, "batch_size": 16, "max_length": 128},
    )
    tuned = run_job(prod_settings, app, commit_job(prod_settings, create_train_job, train))
    child = version_row(prod_settings, tuned.result_version_id)
    assert child.parent_version_id == version["id"]
    assert child.config["base"]["version_id"] == version["id"]
    assert decode_mask(child.training_mask).sum() > 0


def test_only_a_model_of_uploaded_base_takes_uploads(api: Any, good: Path) -> None:
    tiny = _model(api, base="tiny-llama")
    response = _upload(api, tiny["id"], _zip(good))
    assert response.status_code == 422 and "base = 'uploaded'" in response.json()["detail"]


REFUSALS: dict[str, tuple[Callable[[Path], None], str]] = {
    "pickle-weights": (
        lambda f: (f / "pytorch_model.bin").write_bytes(b"\x80\x04pickle"),
        "pickle weight files are refused (pytorch_model.bin)",
    ),
    "pt-file": (lambda f: (f / "extra.pt").write_bytes(b"x"), "pickle weight files"),
    "auto-map": (
        lambda f: _edit_json(f / "config.json", auto_map={"AutoModelForCausalLM": "m.M"}),
        "config.json has auto_map",
    ),
    "trust-remote-code": (
        lambda f: _edit_json(f / "config.json", trust_remote_code=True),
        "config.json has trust_remote_code",
    ),
    "tokenizer-auto-map": (
        lambda f: _edit_json(f / "tokenizer_config.json", auto_map={"AutoTokenizer": ["t.T"]}),
        "tokenizer_config.json has auto_map",
    ),
    "python-file": (
        lambda f: (f / "modeling_evil.py").write_text("import os"),
        "holds Python code (modeling_evil.py)",
    ),
    "no-config": (lambda f: (f / "config.json").unlink(), "no config.json"),
    "no-weights": (lambda f: (f / "model.safetensors").unlink(), "no .safetensors weights"),
    "no-tokenizer": (
        lambda f: [p.unlink() for p in f.glob("tokenizer*")],
        "the folder has no tokenizer",
    ),
    "not-causal": (
        lambda f: _edit_json(f / "config.json", architectures=["BertForMaskedLM"]),
        "not a causal language model",
    ),
    "bad-safetensors": (
        lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64),
        "model.safetensors is not a safetensors file",
    ),
    "config-vocab": (
        lambda f: _edit_json(f / "config.json", vocab_size=7),
        "vocab_size 7 but the embeddings have",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsafe_or_broken_folders_are_refused(
    api: Any, good: Path, tmp_path: Path, case: str
) -> None:
    change, expected = REFUSALS[case]
    model = _model(api)
    response = _upload(api, model["id"], _variant(good, tmp_path, change))
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"], response.json()
    assert response.json()["field"] == "checkpoint"
    assert api.get(f"{V1}/models/{model['id']}/versions").json()["count"] == 0


def test_a_tokenizer_larger_than_the_embeddings_is_refused(api: Any, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "small", vocab=100)  # the byte tokenizer has 259 tokens
    response = _upload(api, _model(api)["id"], _zip(folder))
    assert response.status_code == 422
    assert "the tokenizer has 259 tokens but the model only 100" in response.json()["detail"]


def test_what_needs_torch_is_refused_by_the_loading_child(
    api: Any, good: Path, tmp_path: Path
) -> None:
    """Weights of another width than config.json says: only loading them shows it."""
    data = _variant(good, tmp_path, lambda f: _edit_json(f / "config.json", hidden_size=48))
    response = _upload(api, _model(api)["id"], data)
    assert response.status_code == 422, response.text
    assert "cannot be loaded as a causal LM" in response.json()["detail"]


def test_not_an_archive(api: Any) -> None:
    response = _upload(api, _model(api)["id"], b"just bytes", "model.safetensors")
    assert response.status_code == 422 and "neither" in response.json()["detail"]
