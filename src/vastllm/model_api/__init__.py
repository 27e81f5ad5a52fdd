"""Model API server: one local transformers model behind FastAPI (OpenAI-compatible routes).

Modules, one job each: ``settings`` (configuration), ``hardware`` (device, dtype, GPU facts),
``engine`` (loading + the decode loop), ``sampling``, ``textstream`` (detokenization, stop
sequences), ``scheduler`` (slots, the bounded queue, the one generation turn), ``service``
(the worker thread and its text stream), ``runtime`` (load status), ``schemas``, ``errors``
(OpenAI error shape), ``disconnect``, ``completion``, ``routes_*``, ``app`` and ``main``
(the entry point).
"""
