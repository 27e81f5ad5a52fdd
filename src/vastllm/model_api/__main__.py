"""``python -m vastllm.model_api``: see :mod:`vastllm.model_api.cli`."""

from vastllm.model_api.cli import main

raise SystemExit(main())
