"""The Python package's ports and paths (vastllm.defaults) equal the roles' defaults."""

from __future__ import annotations

import pytest
import yaml

from tests.support import REPO
from vastllm import defaults
from vastllm.cascade.fetched import MODEL_API_URL, VLLM_URL


def role_default(role: str, name: str) -> object:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())[name]


@pytest.mark.parametrize(("role", "variable", "value"), [
    ("model_api", "model_api_port", defaults.MODEL_API_PORT),
    ("vllm", "vllm_port", defaults.VLLM_PORT),
    ("llm_proxy", "llm_proxy_port", defaults.PROXY_PORT),
    ("ollama", "ollama_port", defaults.OLLAMA_PORT),
    ("redis", "redis_port", defaults.REDIS_PORT),
    ("model_fetch", "vastllm_model_dir", defaults.MODELS_DIR),
    ("gpu_facts", "vastllm_model_dir", defaults.MODELS_DIR),
])
def test_the_package_defaults_match_the_roles(role: str, variable: str, value: object) -> None:
    assert role_default(role, variable) == value


def test_the_cascade_talks_to_the_model_api_and_vllm_where_they_listen() -> None:
    assert MODEL_API_URL.endswith(f":{defaults.MODEL_API_PORT}")
    assert VLLM_URL.endswith(f":{defaults.VLLM_PORT}")


def test_the_inventory_group_vars_agree_with_the_package() -> None:
    group_vars = yaml.safe_load((REPO / "inventory/group_vars/all/main.yml").read_text())
    assert group_vars["vastllm_model_dir"] == defaults.MODELS_DIR


def test_the_recovery_role_checks_each_server_where_it_listens() -> None:
    urls = role_default("recovery", "recovery_health_urls")
    assert isinstance(urls, dict)
    assert urls["model-api"] == f"http://127.0.0.1:{defaults.MODEL_API_PORT}/health"
    assert urls["vllm"] == f"http://127.0.0.1:{defaults.VLLM_PORT}/health"
    assert urls["proxy"] == f"http://127.0.0.1:{defaults.PROXY_PORT}/health"
