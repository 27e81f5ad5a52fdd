"""Ports and paths the host's services agree on, defined once for the Python side.

The roles' defaults (roles/*/defaults/main.yml) hold the same numbers for Ansible; a test
(tests/roles/test_defaults.py) keeps the two equal.
"""

from __future__ import annotations

MODEL_API_PORT = 8081  # the transformers model API (roles/model_api: model_api_port)
VLLM_PORT = 8083  # the vLLM server (roles/vllm: vllm_port)
PROXY_PORT = 8082  # the caching proxy, what the tunnel forwards (roles/llm_proxy: llm_proxy_port)
OLLAMA_PORT = 11434  # Ollama's own default (roles/ollama: ollama_port)
REDIS_PORT = 6379  # the proxy's cache (roles/redis: redis_port)
MODELS_DIR = "/workspace/models"  # where model_fetch puts models (vastllm_model_dir)
BUSY_DIR = "/run/vastllm/busy"  # marks of running fetches, pulls, cascades (roles/idle_stop)
