"""OpenAI Chat Completions: ``parse`` (request -> neutral), ``render`` (neutral -> JSON, SSE,
errors), ``routes`` (``/v1/chat/completions``, ``/v1/models``, the seed's ``/chat`` and
``/generate``)."""
