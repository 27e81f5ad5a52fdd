"""Suite-wide settings. In CI (CI=true) hypothesis runs derandomized, so a run is reproducible
from its commit alone; elsewhere it explores new examples every run."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    settings.load_profile("ci")
