"""``-e KEY=VALUE`` options into the extra variables of a run."""

from __future__ import annotations

import json
import re
from typing import Any

from vastllm.cli.errors import UsageProblem

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_value(text: str) -> Any:
    """JSON when the text is JSON (numbers, true/false/null, lists, objects, quoted strings),
    else the text itself: ``n=5`` is 5, ``name=gpu1`` is "gpu1", ``l=[1,2]`` is a list."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            raise UsageProblem(
                f"bad extra variable {item!r}: use KEY=VALUE with KEY a variable name "
                "(letters, digits, _)",
                "'-e' / '--extra-vars'",
            )
        out[key] = parse_value(value)
    return out
