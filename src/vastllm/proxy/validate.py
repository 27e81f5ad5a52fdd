"""Small type checks for request bodies that fail with a 400 naming the offending field.

Hand-written rather than pydantic models: request bodies are large (Claude Code sends ~80 KB)
and checked on every call, so only the fields the proxy reads are looked at.
"""

from __future__ import annotations

from typing import Any

import orjson

from vastllm.proxy.errors import InvalidRequest

# orjson parses up to 1024 levels but encodes at most 254: re-encoding what a client nested
# deeper (a tool's JSON schema, a tool call's input) raises a TypeError, which would be a 500
TOO_DEEP = (
    "request body is nested too deeply: JSON values (tool schemas, tool inputs) may nest at "
    "most about 250 levels"
)


def dumps(value: object, option: int | None = None) -> bytes:
    """``orjson.dumps`` of data that came from a request body: a value it cannot encode is the
    client's 400 (:data:`TOO_DEEP`), not an internal error, wherever the proxy re-encodes it."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as e:
        if str(e) == "Recursion limit reached":
            raise InvalidRequest(TOO_DEEP) from None
        raise InvalidRequest(f"request body holds a value that cannot be re-encoded: {e}") from e


def obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: expected an object")
    return value


def string(value: object, where: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: expected a string")
    if not allow_empty and not value:
        raise InvalidRequest(f"{where}: must not be empty")
    return value


def opt_number(
    body: dict[str, Any], key: str, lo: float, hi: float, where: str = ""
) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidRequest(f"{where or key}: expected a number")
    if not lo <= v <= hi:
        raise InvalidRequest(f"{where or key}: must be between {lo} and {hi}")
    return float(v)


def opt_int(body: dict[str, Any], key: str, lo: int, where: str = "") -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidRequest(f"{where or key}: expected an integer")
    if v < lo:
        raise InvalidRequest(f"{where or key}: must be >= {lo}")
    return v


def opt_bool(body: dict[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise InvalidRequest(f"{key}: expected a boolean")
    return v


def stop_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest(f"{where}: expected a string or a list of strings")
    return [s for s in value if s]
