"""``python -m vastllm.model_api``: see :mod:`vastllm.model_api.main`."""

from vastllm.model_api.main import main

raise SystemExit(main())
