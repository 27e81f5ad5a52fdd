#!/usr/bin/env python3
"""Write the README's role variable tables from each role's meta/argument_specs.yml.

    scripts/role_docs.py           # rewrite README.md between the role-variables markers
    scripts/role_docs.py --check   # exit 1 when README.md is out of date (run by the tests)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- role-variables:begin (scripts/role_docs.py) -->"
END = "<!-- role-variables:end -->"


def _cell(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|")


def render() -> str:
    out: list[str] = []
    for spec_file in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        main = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]
        out += [f"### `{role}`", "", main["short_description"], ""]
        out += ["| variable | default | meaning |", "|---|---|---|"]
        for name, opt in main.get("options", {}).items():
            default = "(required)" if opt.get("required") else _cell(opt.get("default", ""))
            desc = opt["description"]
            desc = " ".join(desc) if isinstance(desc, list) else desc
            out.append(f"| `{name}` | {default} | {desc.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    head, sep1, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not (sep1 and sep2):
        print(f"README.md lacks the markers {BEGIN} ... {END}", file=sys.stderr)
        return 2
    new = f"{head}{BEGIN}\n{render()}\n{END}{tail}"
    if "--check" in sys.argv:
        if new != text:
            print("README.md role tables are stale: run scripts/role_docs.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
