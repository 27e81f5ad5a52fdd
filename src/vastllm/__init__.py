"""vastllm: a rented GPU host turned into a self-healing LLM endpoint."""

__version__ = "0.1.0"
