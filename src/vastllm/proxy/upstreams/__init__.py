"""Where requests go: ``base`` (what every upstream client shares), one module per kind
(``ollama``, ``openai``), ``router`` (health checks, least-outstanding routing, failover) and
``residency`` (how much of an Ollama model sits in VRAM)."""
