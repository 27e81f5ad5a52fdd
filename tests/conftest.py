"""Suite-wide settings. In CI (CI=true) hypothesis runs derandomized, so a run is reproducible
from its commit alone; elsewhere it explores new examples every run. The busy marks
(vastllm.busy) of the fetches, pulls and cascades the tests run, and of the processes they
start, go to a directory of this run, not to the machine's /run/vastllm/busy."""

from __future__ import annotations

import os
import tempfile

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    settings.load_profile("ci")

if not os.environ.get("VASTLLM_BUSY_DIR"):
    os.environ["VASTLLM_BUSY_DIR"] = tempfile.mkdtemp(prefix="vastllm-busy-")
