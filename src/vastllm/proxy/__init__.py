"""Caching LLM proxy: Anthropic Messages and OpenAI Chat Completions in front of Ollama or any
OpenAI-compatible server, with a Redis response cache. Run it with ``python -m vastllm.proxy``."""
