"""The deployment files speak the same language as the code: settings names and CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from auth_service.cli import build_parser
from auth_service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
FIELDS = {name.upper() for name in Settings.model_fields}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return list(spec["containers"])


def test_kustomization_lists_existing_files() -> None:
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource


@pytest.mark.parametrize("name", ["configmap.yaml", "secret.example.yaml"])
def test_config_keys_are_settings(name: str) -> None:
    (doc,) = _docs(K8S / name)
    keys = set(doc.get("data") or doc.get("stringData") or {})
    assert keys
    assert keys <= FIELDS, keys - FIELDS


def test_containers_run_real_cli_commands() -> None:
    parser = build_parser()
    for name in ("deployment.yaml", "migration-job.yaml"):
        (doc,) = _docs(K8S / name)
        for container in _containers(doc):
            command = container["command"]
            assert command[0] == "auth-service"
            parser.parse_args(command[1:])  # exits (fails the test) on an unknown command


def test_probes_use_health_and_ready() -> None:
    (doc,) = _docs(K8S / "deployment.yaml")
    (api,) = _containers(doc)
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"


def test_compose_environment_is_settings() -> None:
    (compose,) = _docs(ROOT / "docker-compose.yml")
    env = compose["services"]["migrate"]["environment"]
    assert set(env) <= FIELDS
    assert compose["services"]["migrate"]["command"] == ["auth-service", "migrate"]
