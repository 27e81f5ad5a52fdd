"""The ``vastllm`` command: the project's playbooks through ansible-runner, with a progress line
and readable failures, a status view of every GPU host, and a chat client for the tunnel."""

import os

# typer forces a colour terminal when PY_COLORS or FORCE_COLOR is set to anything, "0" included,
# which is how pytest, tox and many CI systems say "no colours": honour the "0" (before typer is
# imported, it reads the environment once).
if "0" in (os.environ.get("PY_COLORS"), os.environ.get("FORCE_COLOR")):
    os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")
