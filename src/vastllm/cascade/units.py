"""Byte sizes: parsing ``"4.7 GB"`` / ``"800MiB"`` and printing decimal GB like Ollama does."""

from __future__ import annotations

import re

MIB = 1024**2
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: object) -> int:
    """Bytes from an int, a float or a string with an optional unit (GB = 1e9, GiB = 2**30)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative size: {value}")
        return value
    if isinstance(value, float):
        if value < 0:
            raise ValueError(f"negative size: {value}")
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise ValueError(f"not a size: {value!r} (use bytes or e.g. '4.7 GB', '800 MiB')")


def gb(number_of_bytes: float) -> str:
    """``4_700_000_000`` -> ``"4.7 GB"`` (decimal, as Ollama prints model sizes)."""
    return f"{number_of_bytes / 1e9:.1f} GB"
