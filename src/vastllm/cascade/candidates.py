"""Candidate models of the cascade, in preference order (largest first).

``vram_bytes`` is what the model needs resident at ``context_length``: weights plus KV cache and
compute buffers. The fit check adds a headroom on top (``fit.FitPolicy``). ``download_bytes`` is
what a pull or fetch writes to disk. ``cpu_ok`` marks a model that is usable without a GPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from vastllm.cascade.errors import UsageError
from vastllm.cascade.units import parse_size

Engine = Literal["ollama", "transformers", "vllm"]
ENGINES: tuple[Engine, ...] = ("ollama", "transformers", "vllm")
# engines that serve a model directory fetched from S3 (cascade.fetched)
FETCHED_ENGINES: tuple[Engine, ...] = ("transformers", "vllm")
DEFAULT = "default"


@dataclass(frozen=True)
class Candidate:
    """One model the cascade may choose."""

    name: str
    engine: Engine = "ollama"
    download_bytes: int = 0
    vram_bytes: int = 0
    context_length: int = 32768
    source: str = ""  # Ollama tag (defaults to name) or s3:// URL of a model tarball/prefix
    cpu_ok: bool = False
    sha256: str | None = None  # expected sha256 of an S3 tarball (transformers, vllm)
    # fetch an S3 source with no sha256 to check it against (no sha256 here, no
    # x-amz-meta-sha256, no SHA256SUMS); the fetch refuses it otherwise
    allow_unverified: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("a candidate needs a name")
        if self.engine not in ENGINES:
            raise UsageError(
                f"candidate {self.name}: engine must be one of {', '.join(ENGINES)}, "
                f"not {self.engine!r}"
            )
        if self.context_length <= 0:
            raise UsageError(f"candidate {self.name}: context_length must be positive")
        if self.engine in FETCHED_ENGINES and not self.source.startswith("s3://"):
            raise UsageError(
                f"candidate {self.name}: a {self.engine} candidate needs source: s3://BUCKET/KEY"
            )

    @property
    def tag(self) -> str:
        """What the engine is asked for: the Ollama tag or the S3 URL."""
        return self.source or self.name

    @property
    def model_id(self) -> str:
        """The model name in chat requests: the Ollama tag, or the name the model API serves."""
        return self.tag if self.engine == "ollama" else self.name

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        return data


# Sizes from issue 6 (downloads as Ollama lists them). Resident sizes are weights plus the KV
# cache at 32768 tokens (fp16) plus ~0.5 GB of buffers; with the default 10% headroom
# qwen3-coder asks for 24.0 GB, i.e. a 24 GB card.
_DEFAULTS: tuple[dict[str, Any], ...] = (
    {
        "name": "qwen3-coder",
        "download_bytes": "18.5 GB",
        "vram_bytes": "21.8 GB",
        "context_length": 32768,
        "notes": "30B-A3B MoE, Q4_K_M; needs a 24 GB GPU",
    },
    {
        "name": "qwen2.5-coder:7b",
        "download_bytes": "4.7 GB",
        "vram_bytes": "7.0 GB",
        "context_length": 32768,
    },
    {
        "name": "qwen2.5-coder:1.5b",
        "download_bytes": "1.0 GB",
        "vram_bytes": "2.3 GB",
        "context_length": 32768,
        "cpu_ok": True,
        "notes": "small enough to answer on CPU",
    },
    {
        "name": "llama3.1:8b",
        "download_bytes": "4.7 GB",
        "vram_bytes": "9.5 GB",
        "context_length": 32768,
    },
)


def default_candidates() -> list[Candidate]:
    return [candidate_from_dict(entry) for entry in _DEFAULTS]


_KNOWN = {
    "name",
    "engine",
    "download_bytes",
    "vram_bytes",
    "context_length",
    "source",
    "cpu_ok",
    "sha256",
    "allow_unverified",
    "notes",
}


def candidate_from_dict(entry: dict[str, Any]) -> Candidate:
    """A Candidate from a mapping; sizes may be bytes or strings such as ``"4.7 GB"``."""
    if not isinstance(entry, dict):
        raise UsageError(f"a candidate must be a mapping, not {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"a candidate needs a name: {entry!r}")
    try:
        download = parse_size(entry.get("download_bytes", 0))
        vram = parse_size(entry.get("vram_bytes", 0))
        context = int(entry.get("context_length", 32768))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"candidate {name}: {exc}") from exc
    engine = str(entry.get("engine", "ollama"))
    allow_unverified = entry.get("allow_unverified", False)
    if not isinstance(allow_unverified, bool):
        raise UsageError(f"candidate {name}: allow_unverified must be true or false")
    return Candidate(
        name=name,
        engine=cast("Engine", engine),
        download_bytes=download,
        vram_bytes=vram,
        context_length=context,
        source=str(entry.get("source") or ""),
        cpu_ok=bool(entry.get("cpu_ok", False)),
        sha256=entry.get("sha256"),
        allow_unverified=allow_unverified,
        notes=str(entry.get("notes") or ""),
        extra={k: v for k, v in entry.items() if k not in _KNOWN},
    )


def parse_candidates(data: object, origin: str = "candidates") -> list[Candidate]:
    """A list of mappings, or a mapping with a ``candidates`` list."""
    if isinstance(data, dict) and "candidates" in data:
        data = data["candidates"]
    if not isinstance(data, list):
        raise UsageError(f"{origin}: expected a list of candidates (or {{candidates: [...]}})")
    result = [candidate_from_dict(entry) for entry in data]
    seen: set[tuple[str, str]] = set()
    for candidate in result:
        key = (candidate.engine, candidate.name)
        if key in seen:
            raise UsageError(f"{origin}: candidate {candidate.name} is listed twice")
        seen.add(key)
    return result


def load_candidates(spec: str | Path) -> list[Candidate]:
    """``"default"`` or a path to a YAML (``.yaml``/``.yml``, needs PyYAML) or JSON file."""
    if str(spec) == DEFAULT:
        return default_candidates()
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read candidates file {path}: {exc.strerror}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # noqa: PLC0415 - optional: only YAML lists need it
        except ImportError as exc:
            raise UsageError(
                f"{path}: reading YAML needs PyYAML (pip install pyyaml) or use a JSON file"
            ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: invalid YAML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{path}: invalid JSON: {exc}") from exc
    return parse_candidates(data, str(path))


def find_candidate(candidates: list[Candidate], name: str) -> Candidate | None:
    """The candidate called ``name`` (Ollama's ``:latest`` is implied on both sides)."""
    wanted = ollama_name(name)
    for candidate in candidates:
        if candidate.name == name or ollama_name(candidate.name) == wanted:
            return candidate
    return None


def ollama_name(name: str) -> str:
    """Ollama's short display name: ``qwen3-coder`` -> ``qwen3-coder:latest``."""
    name = name.strip()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"
