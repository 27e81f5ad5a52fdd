"""Anthropic Messages: ``parse`` (request -> neutral), ``render`` (neutral -> JSON, SSE,
errors), ``routes`` (``/v1/messages``, ``/v1/messages/count_tokens``)."""
