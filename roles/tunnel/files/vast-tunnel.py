#!/usr/bin/env python3
"""vastllm tunnel to a Vast.ai instance whose SSH endpoint may change.

Installed on the workstation by the tunnel role and run by the tunnel's manager (systemd user
unit, launchd agent or supervised_service) instead of a bare autossh:

    vast-tunnel.py --label my-llm [--id 123] [--api-url URL] [--env-file FILE] [--user root]
                   [--max-start 3] [--retry-max 60] -- autossh -M 0 -N -o ... -L ...

In a loop, until it is stopped (SIGTERM/SIGINT/SIGHUP):

1. resolve the instance's current SSH endpoint through the Vast.ai API
   (GET /api/v1/instances/, every page): the instance with --id if it is among the matches, else
   the newest running one labelled --label; direct endpoint (public IP + host port of 22/tcp)
   when mapped, else the Vast.ai SSH proxy;
2. run the autossh command given after "--" with "-o HostKeyAlias=vast-instance-<id> -p PORT
   USER@HOST" appended and AUTOSSH_MAXSTART=--max-start, so a dead address ends autossh after a
   few tries; the host key stays pinned to the instance whatever its address;
3. when autossh ends, resolve again (a tunnel that lived a minute or more reconnects at once,
   otherwise after a back-off that doubles up to --retry-max seconds).

The loop is inside this program (rather than exiting and letting the manager restart it) so that
every manager behaves the same and none of them gives up after a burst of quick exits. An
instance that is gone or stopped, or an API error, is logged once (one line, again only when
the reason changes) and retried every --retry-max seconds at most.

The Vast.ai API client (key lookup, retries, paging, endpoint choice) is vastai_api.py, which the
role installs next to this file: plugins/module_utils/vastai_api.py of vastllm, shared with the
vastai inventory plugin and the vastai_instance module. The API key comes from VAST_API_KEY in
--env-file (a 0600 file the role writes), else the environment variable VAST_API_KEY, else
$XDG_CONFIG_HOME/vastai/vast_api_key (default ~/.config/vastai/vast_api_key), else
~/.vast_api_key; it is read again at every resolve and never logged. A label with characters
other than letters, digits, ".", "_" and "-" is passed as --label-b64 (no quoting issues in unit
files). --resolve-only prints "HOST PORT MODE ID" and exits (1 when there is nothing to reach),
for diagnosis. Standard library only (Python >= 3.8).
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

# the Vast.ai API client shared with the vastllm Ansible code, installed next to this file
sys.dont_write_bytecode = True  # no __pycache__ in the resolver's directory
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import vastai_api
except ImportError as exc:
    sys.exit(f"vast-tunnel: cannot import vastai_api.py from "
             f"{os.path.dirname(os.path.abspath(__file__))} ({exc}): the tunnel role installs it "
             "next to vast-tunnel.py; run the role again")

STABLE_SECONDS = 60.0  # an autossh that lived this long counts as a working tunnel
TIMEOUT = 30  # seconds for each HTTP answer


class Unreachable(Exception):
    """Nothing to connect to right now; the message says why (one line, no secret)."""


def log(name: str, message: str) -> None:
    print(f"vast-tunnel {name}: {message}", file=sys.stderr, flush=True)


def read_env_file(path: str) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                line = raw.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip("'\"")
    except OSError:
        pass
    return values


def find_key(env_file: str | None) -> tuple[str, str]:
    """(key, where it came from)."""
    given = read_env_file(env_file).get("VAST_API_KEY") if env_file else None
    found = vastai_api.find_api_key(given, env_file or "")
    if found is None:
        raise Unreachable("no Vast.ai API key: looked at "
                          + (f"{env_file}, " if env_file else "")
                          + "VAST_API_KEY, ~/.config/vastai/vast_api_key and ~/.vast_api_key")
    return found


def list_instances(api_url: str, key: str, source: str) -> list[dict[str, Any]]:
    client = vastai_api.Client(api_url, key, retries=vastai_api.DEFAULT_RETRIES, timeout=TIMEOUT,
                               user_agent="vastllm-tunnel")
    try:
        rows: list[dict[str, Any]] = client.instances()
    except vastai_api.KeyRejected:
        raise Unreachable(f"Vast.ai rejected the API key from {source} "
                          "(401 auth_error)") from None
    except vastai_api.ApiUnreachable as exc:
        raise Unreachable(str(exc)) from None
    except vastai_api.VastApiError as exc:
        raise Unreachable(f"Vast.ai API: {exc}") from None
    return rows


def describe(label: str | None, instance_id: int | None) -> str:
    parts = []
    if label:
        parts.append(f"labelled {label!r}")
    if instance_id is not None:
        parts.append(f"with id {instance_id}")
    return "Vast.ai instance " + " or ".join(parts)


def choose(instances: list[dict[str, Any]], label: str | None,
           instance_id: int | None) -> tuple[str, int, str, int]:
    """The endpoint to connect to, or Unreachable saying why there is none."""
    matches = [i for i in instances
               if (instance_id is not None and i.get("id") == instance_id)
               or (label and isinstance(i.get("label"), str) and i["label"].strip() == label)]
    if not matches:
        raise Unreachable(f"no {describe(label, instance_id)} (gone or never created)")
    running = [i for i in matches if i.get("actual_status") == "running"]
    if not running:
        states = ", ".join(f"{i['id']} is {i.get('actual_status') or 'provisioning'}"
                           for i in sorted(matches, key=lambda i: i["id"]))
        raise Unreachable(f"{describe(label, instance_id)} is not running ({states})")
    # the instance the tunnel was made for, else the newest one carrying the label
    running.sort(key=lambda i: (i.get("id") == instance_id, i["id"]), reverse=True)
    inst = running[0]
    endpoint = vastai_api.ssh_endpoint(inst)
    if endpoint is None:
        raise Unreachable(f"instance {inst['id']} runs but has no SSH endpoint yet")
    return endpoint.host, endpoint.port, endpoint.mode, int(inst["id"])


def resolve(args: argparse.Namespace) -> tuple[str, int, str, int]:
    key, source = find_key(args.env_file)
    return choose(list_instances(args.api_url, key, source), args.label, args.id)


class Runner:
    """The resolve / autossh loop, stoppable from a signal handler."""

    def __init__(self, args: argparse.Namespace, command: list[str]) -> None:
        self.args = args
        self.command = command
        self.name = args.label or f"C.{args.id}"
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.last_problem = ""

    def stop(self, signum: int, _frame: Any) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    def run_autossh(self, endpoint: tuple[str, int, str, int]) -> tuple[int, float]:
        host, port, _, instance_id = endpoint
        argv = [*self.command, "-o", f"HostKeyAlias=vast-instance-{instance_id}",
                "-p", str(port), f"{self.args.user}@{host}"]
        env = dict(os.environ)
        env["AUTOSSH_MAXSTART"] = str(self.args.max_start)
        env.setdefault("AUTOSSH_GATETIME", "0")
        started = time.monotonic()
        try:
            self.child = subprocess.Popen(argv, env=env)
        except OSError as exc:
            log(self.name, f"cannot start {argv[0]}: {exc}")
            return 127, 0.0
        try:
            rc = self.child.wait()
        finally:
            self.child = None
        return rc, time.monotonic() - started

    def problem(self, message: str) -> None:
        if message != self.last_problem:
            log(self.name, f"{message}; retrying every {self.args.retry_max:g} s at most")
            self.last_problem = message

    def loop(self) -> int:
        delay = self.args.retry_min
        current: tuple[str, int, str, int] | None = None
        while not self.stopping.is_set():
            try:
                endpoint = resolve(self.args)
            except Unreachable as exc:
                self.problem(str(exc))
                self.stopping.wait(delay)
                delay = min(delay * 2, self.args.retry_max)
                continue
            self.last_problem = ""
            host, port, mode, instance_id = endpoint
            if endpoint != current:
                log(self.name, f"instance {instance_id} answers SSH on {host}:{port} ({mode}); "
                               "starting autossh")
                current = endpoint
            rc, lived = self.run_autossh(endpoint)
            if self.stopping.is_set():
                break
            if lived >= STABLE_SECONDS:
                delay = self.args.retry_min
                log(self.name, f"autossh ended (exit {rc}) after {lived:.0f} s; "
                               "resolving the endpoint again")
                continue
            log(self.name, f"autossh ended (exit {rc}) after {lived:.1f} s; "
                           f"resolving the endpoint again in {delay:g} s")
            self.stopping.wait(delay)
            delay = min(delay * 2, self.args.retry_max)
        log(self.name, "stopped")
        return 0


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" in argv:
        cut = argv.index("--")
        own, command = argv[:cut], argv[cut + 1:]
    else:
        own, command = argv, []
    parser = argparse.ArgumentParser(
        prog="vast-tunnel.py",
        description="autossh to a Vast.ai instance found by label, following endpoint changes")
    parser.add_argument("--label", help="label of the instance")
    parser.add_argument("--label-b64", help="the label, base64 of its UTF-8 (labels with spaces)")
    parser.add_argument("--id", type=int, help="id of the instance (preferred among the matches)")
    parser.add_argument("--api-url", default="https://console.vast.ai")
    parser.add_argument("--env-file", help="file with VAST_API_KEY=... (read at every resolve)")
    parser.add_argument("--user", default="root", help="SSH user (default root)")
    parser.add_argument("--max-start", type=int, default=3,
                        help="AUTOSSH_MAXSTART: ssh starts before autossh gives up (default 3)")
    parser.add_argument("--retry-min", type=float, default=2.0,
                        help="first pause in seconds before resolving again (default 2)")
    parser.add_argument("--retry-max", type=float, default=60.0,
                        help="longest pause in seconds between two resolves (default 60)")
    parser.add_argument("--resolve-only", action="store_true",
                        help='print "HOST PORT MODE ID" and exit')
    args = parser.parse_args(own)
    if args.label_b64:
        try:
            args.label = base64.b64decode(args.label_b64, validate=True).decode("utf-8")
        except ValueError:
            parser.error("--label-b64 is not base64 of UTF-8 text")
    args.label = args.label.strip() if args.label else None
    if not args.label and args.id is None:
        parser.error("give --label, --label-b64 or --id")
    if not args.resolve_only and not command:
        parser.error('give the autossh command after "--"')
    if args.retry_min <= 0 or args.retry_max < args.retry_min:
        parser.error("need 0 < --retry-min <= --retry-max")
    return args, command


def main(argv: list[str] | None = None) -> int:
    args, command = parse(sys.argv[1:] if argv is None else argv)
    if args.resolve_only:
        try:
            host, port, mode, instance_id = resolve(args)
        except Unreachable as exc:
            log(args.label or f"C.{args.id}", str(exc))
            return 1
        print(f"{host} {port} {mode} {instance_id}")
        return 0
    runner = Runner(args, command)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, runner.stop)
    return runner.loop()


if __name__ == "__main__":
    sys.exit(main())
