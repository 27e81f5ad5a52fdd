"""``python -m vastllm.proxy``: see :mod:`vastllm.proxy.cli`."""

import sys

from vastllm.proxy.cli import main

sys.exit(main())
