"""Model API server: one local transformers model behind FastAPI (OpenAI-compatible routes).

Modules, one job each: ``settings`` (configuration), ``hardware`` (device, dtype, GPU facts),
``engine`` (loading + the decode loop), ``sampling``, ``textstream`` (detokenization, stop
sequences), ``scheduler`` (slots and the bounded queue), ``service`` (worker threads and their
text stream), ``runtime`` (load status), ``schemas``, ``errors`` (OpenAI error shape),
``disconnect``, ``completion``, ``routes_*``, ``app`` and ``main`` (the entry point).
"""
