"""Small helpers shared by the test suites: free loopback ports, waiting for servers."""

from __future__ import annotations

import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_tcp(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Block until host:port accepts a connection, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_http(url: str, timeout: float = 30.0, status: int = 200) -> None:
    """Block until GET url answers with the given status, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
                if r.status == status:
                    return
                last = r.status
        except urllib.error.HTTPError as e:
            if e.code == status:
                return
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s (last: {last})")


_CONTROL_DIR: list[str] = []


def ssh_control_dir() -> str:
    """A short directory for Ansible's ssh control sockets (ANSIBLE_SSH_CONTROL_PATH_DIR). Under a
    test's HOME (``/tmp/pytest-of-root/pytest-1009/<test name>/home/.ansible/cp/...``) a socket
    path passes the ~108 characters a unix socket may have, and ssh refuses to connect."""
    if not _CONTROL_DIR:
        _CONTROL_DIR.append(tempfile.mkdtemp(prefix="vastllm-cp-", dir="/tmp"))
    return _CONTROL_DIR[0]
