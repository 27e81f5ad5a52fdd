"""Engine-agnostic model cascade: run the largest model that fits the host and actually answers.

``candidates`` (what could run), ``facts`` (what the host has, from the ``gpu_facts`` module),
``fit`` (skip what cannot fit), the engine adapters ``ollama`` (pulls) and ``fetched`` (S3
fetches served by the model API or vLLM), ``clients`` (chat over Ollama or OpenAI), ``smoke``
(does it answer, call tools, keep a long prompt), ``select`` (the cascade itself and the
active-model file) and ``cli`` (``python -m vastllm.cascade``).
Standard library only: a GPU host needs nothing else (PyYAML only to read YAML candidate lists).
"""

from vastllm.cascade.candidates import Candidate, default_candidates, load_candidates
from vastllm.cascade.errors import CascadeError, EngineError
from vastllm.cascade.select import CascadeOptions, CascadeResult, run_cascade

__all__ = [
    "Candidate",
    "CascadeError",
    "CascadeOptions",
    "CascadeResult",
    "EngineError",
    "default_candidates",
    "load_candidates",
    "run_cascade",
]
