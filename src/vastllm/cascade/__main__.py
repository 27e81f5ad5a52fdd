"""Entry point: ``python -m vastllm.cascade --facts facts.json [--json]``."""

import sys

from vastllm.cascade.cli import main

sys.exit(main())
