"""Recognise the model layout of an extracted directory and find missing shards."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vastllm.fetch.errors import LayoutError
from vastllm.fetch.marker import MARKER_NAME

SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
_GGUF_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")


@dataclass
class Layout:
    """What the directory holds. `model_dir` is relative to the target ("" = the target)."""

    kind: str = "unknown"  # sharded-safetensors | single-safetensors | pytorch-bin | gguf
    model_dir: str = ""
    weights: list[str] = field(default_factory=list)
    missing_shards: list[str] = field(default_factory=list)
    tokenizer_files: list[str] = field(default_factory=list)
    has_config: bool = False
    has_chat_template: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _model_dir(root: Path) -> Path:
    """Descend through single wrapping directories (`tar czf x.tgz NAME/` style archives)."""
    current = root
    while True:
        entries = [p for p in current.iterdir() if p.name != MARKER_NAME]
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            current = entries[0]
            continue
        return current


def _index_shards(index: Path) -> list[str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LayoutError(f"{index.name} is not a valid shard index ({e})") from None
    return sorted({str(v) for v in weight_map.values()})


def _present(directory: Path, names: list[str]) -> list[str]:
    """The names missing under `directory` (a shard path leaving it counts as missing)."""
    missing = []
    for name in names:
        path = directory / name
        if ".." in Path(name).parts or name.startswith("/") or not path.is_file():
            missing.append(name)
    return missing


def _gguf_missing(files: list[str]) -> list[str]:
    missing: list[str] = []
    groups: dict[tuple[str, int], set[int]] = {}
    for name in files:
        match = _GGUF_SPLIT.match(name)
        if match:
            key = (match["stem"], int(match["total"]))
            groups.setdefault(key, set()).add(int(match["part"]))
    for (stem, total), parts in groups.items():
        missing += [
            f"{stem}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1) if i not in parts
        ]
    return sorted(missing)


def _has_chat_template(directory: Path) -> bool:
    if any((directory / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return True
    config = directory / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def detect_layout(root: Path) -> Layout:
    """Describe the model under `root`; list shards that an index names but that are absent."""
    directory = _model_dir(root)
    relative = directory.relative_to(root).as_posix()
    layout = Layout(model_dir="" if relative == "." else relative)
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    safetensors = [n for n in names if n.endswith(".safetensors")]
    ggufs = [n for n in names if n.endswith(".gguf")]
    if SAFETENSORS_INDEX in names:
        layout.kind = "sharded-safetensors"
        layout.weights = _index_shards(directory / SAFETENSORS_INDEX)
        layout.missing_shards = _present(directory, layout.weights)
    elif "model.safetensors" in names or len(safetensors) == 1:
        layout.kind = "single-safetensors"
        layout.weights = ["model.safetensors"] if "model.safetensors" in names else safetensors
    elif PYTORCH_INDEX in names:
        layout.kind = "pytorch-bin"
        layout.weights = _index_shards(directory / PYTORCH_INDEX)
        layout.missing_shards = _present(directory, layout.weights)
    elif "pytorch_model.bin" in names:
        layout.kind = "pytorch-bin"
        layout.weights = ["pytorch_model.bin"]
    elif ggufs:
        layout.kind = "gguf"
        layout.weights = ggufs
        layout.missing_shards = _gguf_missing(ggufs)
    if len(safetensors) > 1 and layout.kind != "sharded-safetensors":
        layout.notes.append(f"{len(safetensors)} .safetensors files but no {SAFETENSORS_INDEX}")
    layout.tokenizer_files = [n for n in TOKENIZER_FILES if n in names]
    layout.has_config = "config.json" in names
    layout.has_chat_template = _has_chat_template(directory)
    if layout.kind == "unknown":
        layout.notes.append("no model weights recognised (safetensors, pytorch .bin or gguf)")
    elif not layout.has_config and layout.kind != "gguf":
        layout.notes.append("no config.json")
    return layout


def require_complete(layout: Layout, where: str) -> None:
    """Raise LayoutError when the index lists shards that are not there."""
    if layout.missing_shards:
        shown = ", ".join(layout.missing_shards[:5])
        more = (
            f" (+{len(layout.missing_shards) - 5} more)" if len(layout.missing_shards) > 5 else ""
        )
        raise LayoutError(
            f"{where}: the model is incomplete: {len(layout.missing_shards)} shard(s) listed in "
            f"the index are missing: {shown}{more}"
        )
