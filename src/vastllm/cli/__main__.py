"""``python -m vastllm.cli``: the same as the ``vastllm`` command."""

from vastllm.cli.cli import app

app(prog_name="vastllm")
