"""playbooks/destroy.yml against the Vast.ai API double: destroy by label, report labels without
an instance, ask first unless told not to, and by default take the inventory's gpu_hosts (the
vastai inventory plugin's host names)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import termios
import time

import yaml

from tests.doubles.vastai_api_double import FIRST_ID
from tests.support import REPO
from tests.vastai.playbook_support import ANSIBLE_PLAYBOOK, KEY, Controller

DESTROY = REPO / "playbooks" / "destroy.yml"
ID = {n: FIRST_ID + n for n in range(33)}


def line_mode(fd: int) -> bool:
    """Whether the pseudo-terminal (seen from its primary side) is in canonical mode."""
    return bool(termios.tcgetattr(fd)[3] & termios.ICANON)


def deleted(vast: Controller) -> list[int]:
    return [int(r["path"].split("/")[-2]) for r in vast.requests("DELETE")]


def test_destroys_by_label_without_asking_and_reports_missing_labels(vast: Controller) -> None:
    run = vast.playbook(DESTROY, {"vastai_destroy_labels": ["llm-00", "dup-box", "no-such-box"],
                                  "vastai_destroy_confirm": False})
    assert run.rc == 0, run.output
    assert run.recap()["changed"] == 1
    assert sorted(deleted(vast)) == [ID[0], ID[5], ID[6]]  # both instances sharing dup-box
    assert all(r["key_ok"] for r in vast.requests(prefix="/api/"))
    assert "No Vast.ai instance labelled no-such-box: nothing to destroy for them." in run.stdout
    assert f"Destroyed: llm-00 #{ID[0]}, dup-box #{ID[5]}, dup-box #{ID[6]}." in run.stdout
    assert not {ID[0], ID[5], ID[6]} & set(vast.api.state.instances)
    assert KEY not in run.output

    # nothing left to destroy: reported, not an error, nothing changed
    vast.api.state.requests.clear()
    again = vast.playbook(DESTROY, {"vastai_destroy_labels": ["llm-00"],
                                    "vastai_destroy_confirm": False})
    assert again.rc == 0, again.output
    assert again.recap()["changed"] == 0
    assert "No Vast.ai instance labelled llm-00" in again.stdout
    assert "No Vast.ai instance to destroy (labels asked for: llm-00)." in again.stdout
    assert vast.requests("DELETE") == []


def test_old_variable_names_stop_the_run_before_any_request(vast: Controller) -> None:
    """The destroy entry point checks the old vast_* names too, in check mode as well."""
    run = vast.playbook(DESTROY, args=["-e", "vast_api_key=x", "-e", "vast_destroy_labels=llm-00",
                                       "--check"])
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert "vast_api_key was renamed vastai_api_key in this release (docs/upgrading.md)." in text
    assert ("vast_destroy_labels was renamed vastai_destroy_labels in this release "
            "(docs/upgrading.md).") in text
    assert vast.requests(prefix="/api/") == []
    assert ID[0] in vast.api.state.instances


def test_confirmation_without_a_terminal_destroys_nothing(vast: Controller) -> None:
    run = vast.playbook(DESTROY, {"vastai_destroy_labels": "llm-02,llm-04"})  # stdin: /dev/null
    assert run.rc != 0
    assert "Not confirmed (the answer was not 'yes'): nothing was destroyed." in run.stdout
    assert vast.requests("DELETE") == []
    check = vast.playbook(DESTROY, {"vastai_destroy_labels": "llm-02,llm-04"}, args=["--check"])
    assert check.rc == 0, check.output
    assert f"Would destroy: llm-02 #{ID[2]}, llm-04 #{ID[4]}." in check.stdout
    assert vast.requests("DELETE") == []


def test_confirmation_prompt_on_a_terminal(vast: Controller) -> None:
    """The prompt names the instances; typing yes destroys them."""
    setsid = shutil.which("setsid")
    assert setsid, "setsid (util-linux) is needed to give ansible-playbook a controlling terminal"
    # the pause module needs a controlling terminal: a new session on the pseudo-terminal
    cmd = [setsid, "-w", "-c", str(ANSIBLE_PLAYBOOK), "-i", str(vast.inventory()), str(DESTROY),
           "-e", f"vastai_api_url={vast.api.url}", "-e", f"vastai_destroy_labels=llm-02,C.{ID[3]}"]
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=REPO, env=vast.env(), stdin=secondary, stdout=secondary,
                            stderr=secondary, close_fds=True)
    os.close(secondary)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the other side closed: the playbook ended
                    break
                if not chunk:
                    break
                seen += chunk
            # answer once the prompt shows and pause has switched the terminal out of line mode
            # (it discards what was typed before)
            if not answered and b"type yes" in seen and not line_mode(primary):
                os.write(primary, b"yes\r")
                answered = True
            if proc.poll() is not None and not ready:
                break
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            # the playbook leads its own session (setsid): kill the whole session, or a worker it
            # forked lives on, waiting at the prompt
            subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
            proc.kill()
            proc.wait()
        os.close(primary)
    text = seen.decode(errors="replace")
    assert f"destroy 2 instances (llm-02 #{ID[2]}, no label #{ID[3]})? type yes" in text
    assert rc == 0, text
    assert sorted(deleted(vast)) == [ID[2], ID[3]]


def test_default_labels_are_the_vast_inventory_hosts(vast: Controller) -> None:
    """With inventory/vast.yml's plugin, every running instance is a gpu_hosts host (named by
    label, <label>-<id> or C.<id>); destroy.yml without labels destroys exactly those."""
    inventory = vast.tmp / "test.vast.yml"
    inventory.write_text(yaml.safe_dump({"plugin": "vastai", "api_url": vast.api.url}))
    run = vast.playbook(DESTROY, {"vastai_destroy_confirm": False}, inventory=inventory)
    assert run.rc == 0, run.output
    assert sorted(deleted(vast)) == [ID[n] for n in range(30)]
    assert sorted(vast.api.state.instances) == [ID[30], ID[31], ID[32]]  # not running: not hosts
    assert "No Vast.ai instance labelled" not in run.stdout
