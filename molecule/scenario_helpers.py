"""Helpers shared by the Molecule scenarios' testinfra tests (molecule/*/tests).

The tests import it as ``scenario_helpers``: molecule/ is not a package (a package named molecule
would hide the Molecule tool), so pytest puts this folder on sys.path when it loads
molecule/conftest.py, before it imports any test module below it. The conftest also has pytest
rewrite this module's asserts, so their failures show the values as a test's own would.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[1]))

QUESTION = "What is the capital of France? Answer in one word."


def run_playbook(path: str, *extra: str) -> tuple[int, str, dict[str, int]]:
    """Run a playbook of this repository with Molecule's inventory:
    run_playbook("playbooks/recover.yml", "--check") -> (rc, output, {host: changed})."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", NO_COLOR="1")
    result = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(REPO / path), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env=env,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", out, re.M)
    return result.returncode, out, {name: int(count) for name, count in recap}


def run_python(host: Any, python: str, code: str) -> str:
    """``python -c code`` on the host; its stdout (it must succeed)."""
    result = host.run(f"{python} -c {shlex.quote(code)}")
    assert result.rc == 0, result.stderr
    return str(result.stdout)


def states(host: Any) -> dict[str, str]:
    """supervisorctl status on the host: {program: state}."""
    lines = host.run("supervisorctl status").stdout.splitlines()
    return {line.split()[0]: line.split()[1] for line in lines if len(line.split()) > 1}


def wait_for(
    predicate: Callable[[], object], seconds: float, what: str, interval: float = 0.5
) -> float:
    """Poll predicate every interval seconds; the seconds it took to hold, or fail the test."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    pytest.fail(f"{what} did not happen within {seconds} s")


def openai_answer(host: Any, python: str, base_url: str, model: str) -> str:
    """QUESTION asked through the official openai SDK (python: the sdk fixture's) of the
    OpenAI-compatible server at base_url (its /v1), greedily; the answer's text."""
    code = f"""
from openai import OpenAI
c = OpenAI(base_url={base_url!r}, api_key="unused")
r = c.chat.completions.create(model={model!r}, temperature=0, max_tokens=20,
    messages=[{{"role": "user", "content": {QUESTION!r}}}])
print(r.choices[0].message.content)
"""
    return run_python(host, python, code)


def anthropic_reply(host: Any, python: str, text: str) -> tuple[str, float]:
    """``text`` sent once through the caching proxy (127.0.0.1:8082) with the official anthropic
    SDK (python: the sdk fixture's); the answer's text and the seconds it took."""
    code = f"""
import anthropic, time
c = anthropic.Anthropic(base_url="http://127.0.0.1:8082", api_key="unused")
t = time.monotonic()
m = c.messages.create(model="claude-sonnet-4-5", max_tokens=32,
    messages=[{{"role": "user", "content": {text!r}}}])
print(time.monotonic() - t, m.content[0].text)
"""
    took, _, answer = run_python(host, python, code).strip().partition(" ")
    return answer, float(took)


def assert_proxy_answers_then_caches(host: Any, python: str, then: str = "") -> list[str]:
    """QUESTION asked twice through the caching proxy (127.0.0.1:8082) with the official
    anthropic SDK: the first answer is a cache miss that says Paris, the second the same answer
    from the cache. ``then`` is more code for the same script (``c`` is its client); returns the
    lines that code printed."""
    code = f"""
import anthropic
c = anthropic.Anthropic(base_url="http://127.0.0.1:8082", api_key="unused")
for _ in range(2):
    raw = c.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=20,
        messages=[{{"role": "user", "content": {QUESTION!r}}}], extra_body={{"temperature": 0}})
    m = raw.parse()
    print(raw.headers.get("x-vastllm-cache"), m.content[0].text.replace(chr(10), " "))
{then}"""
    first, second, *rest = run_python(host, python, code).strip().splitlines()
    assert first.startswith("miss ")
    assert "Paris" in first
    assert second == "hit " + first.removeprefix("miss ")
    return rest
