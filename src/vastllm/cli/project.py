"""Find the vastllm project (the directory with ``site.yml`` and ``ansible.cfg``) and the
inventories a run uses."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from vastllm.cli.errors import UsageProblem

PROJECT_ENV = "VASTLLM_PROJECT_DIR"
MARKERS = ("site.yml", "ansible.cfg")
PROJECT_PARAM = "'--project-dir'"


@dataclass(frozen=True)
class Project:
    """A checkout of the vastllm playbooks."""

    root: Path

    @property
    def ansible_cfg(self) -> Path:
        return self.root / "ansible.cfg"

    def setting(self, name: str, fallback: str = "") -> str:
        """A ``[defaults]`` setting of ``ansible.cfg``, stripped; ``fallback`` when unset."""
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
        try:
            parser.read(self.ansible_cfg, encoding="utf-8")
        except configparser.Error as exc:
            raise UsageProblem(f"cannot read {self.ansible_cfg}: {exc}") from exc
        return parser.get("defaults", name, fallback=fallback).strip()

    def default_inventories(self) -> list[str]:
        """The ``inventory`` of ``ansible.cfg`` ([defaults], comma-separated), made absolute
        against the project the way ansible resolves it; empty when it sets none."""
        value = self.setting("inventory")
        out = []
        for item in (part.strip() for part in value.split(",")):
            if item:
                path = Path(os.path.expanduser(item))
                out.append(str(path if path.is_absolute() else self.root / path))
        return out

    def playbook(self, relative: str) -> Path:
        path = self.root / relative
        if not path.is_file():
            raise UsageProblem(f"{relative} not found in the project {self.root}")
        return path


def is_project(path: Path) -> bool:
    return all((path / name).is_file() for name in MARKERS)


def find_project(explicit: Path | None, cwd: Path) -> Project:
    """``explicit`` (--project-dir or $VASTLLM_PROJECT_DIR) when given, else the nearest
    directory from ``cwd`` upwards that has both ``site.yml`` and ``ansible.cfg``."""
    if explicit is not None:
        root = explicit.expanduser().resolve()
        if not is_project(root):
            raise UsageProblem(
                f"{explicit} is not a vastllm project: it needs {' and '.join(MARKERS)}",
                PROJECT_PARAM,
            )
        return Project(root)
    here = cwd.resolve()
    for candidate in (here, *here.parents):
        if is_project(candidate):
            return Project(candidate)
    raise UsageProblem(
        f"no vastllm project found: neither {here} nor a parent directory has "
        f"{' and '.join(MARKERS)}. Run from the project checkout, or pass --project-dir "
        f"(or set {PROJECT_ENV}).",
        PROJECT_PARAM,
    )


def resolve_inventories(given: list[str], cwd: Path) -> list[str]:
    """Inventory sources from -i: paths relative to ``cwd`` made absolute; a host list such
    as ``203.0.113.7,`` is passed on as it is."""
    out = []
    for source in given:
        path = (cwd / Path(source).expanduser()).resolve()
        if path.exists():
            out.append(str(path))
        elif "," in source:
            out.append(source)
        else:
            raise UsageProblem(f"inventory {source} not found", "'-i' / '--inventory'")
    return out
