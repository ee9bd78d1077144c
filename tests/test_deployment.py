"""docker-compose.yml is valid and speaks the settings the code actually reads."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from core.settings import Settings
from tests.services import REPO


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_present(compose) -> None:
    assert {"postgres", "redis", "minio", "minio-init", "api", "worker-cpu", "worker-gpu"} <= set(
        compose["services"]
    )
    gpu = compose["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_every_expunge_variable_is_a_setting(compose) -> None:
    fields = {f"EXPUNGE_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for var in env:
            if var.startswith("EXPUNGE_"):
                assert var in fields, f"{name} sets {var}, which Settings does not read"


def test_production_settings_are_complete_and_valid(compose) -> None:
    env = {k: v for k, v in compose["services"]["api"]["environment"].items()}
    # ${VAR:-default} takes its default; required ${VAR:?...} secrets get a random value.
    resolved = {
        k: re.sub(r"\$\{[^}]+\}", "x" * 32, re.sub(r"\$\{[^}:]+:-([^}]+)\}", r"\1", str(v)))
        for k, v in env.items()
        if k.startswith("EXPUNGE_")
    }
    settings = Settings(**{k.removeprefix("EXPUNGE_").lower(): v for k, v in resolved.items()})
    assert settings.env == "production"
    assert settings.database_url.startswith("postgresql")
    assert settings.broker_url.startswith("redis://")
    assert settings.storage_url.startswith("s3://")


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValueError, match="refusing to start"):
        Settings(env="production", database_url="sqlite:///x.db")
    with pytest.raises(ValueError, match="S3_SECRET_KEY"):
        Settings(
            env="production",
            database_url="postgresql://h/db",
            storage_url="s3://h:9000/b",
            s3_access_key="a",
            s3_secret_key="minioadmin",
        )


def test_dockerfile_builds_what_compose_runs(compose) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile
    for name in ("api", "worker-cpu", "migrate"):
        assert compose["services"][name]["build"] == "."


def test_the_image_copies_every_installed_package() -> None:
    """`pip install .` in the image installs what pyproject lists; a package the Dockerfile
    forgets to copy (a new top-level one, e.g. cli/ or contracts/) is missing at run time."""
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = set(re.findall(r"^COPY (\w+) \1$", (REPO / "Dockerfile").read_text(), re.M))
    assert packages <= copied, f"Dockerfile copies no {sorted(packages - copied)}"
