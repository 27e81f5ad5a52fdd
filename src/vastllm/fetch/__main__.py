"""Entry point: `python -m vastllm.fetch --url s3://b/k --dest DIR [--json]`."""

import sys

from vastllm.fetch.cli import main

sys.exit(main())
