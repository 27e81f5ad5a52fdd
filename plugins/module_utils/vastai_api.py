# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Vast.ai REST API as vastllm uses it, in one place.

Used by the vastai_instance module of the vastai_instance role (``ansible.module_utils.vastai_api``,
shipped to the module by Ansible from ``plugins/module_utils``), the vastai inventory plugin
(loaded by path on the controller) and the tunnel role's resolver ``vast-tunnel.py`` (installed
next to it on the workstation). Hence: standard library only, Python >= 3.8, no Ansible import.

What is here:

* the API key lookup order of the vastai CLI/SDK: a value given by the caller, the environment
  variable ``VAST_API_KEY``, ``$XDG_CONFIG_HOME/vastai/vast_api_key`` (default
  ``~/.config/vastai/vast_api_key``), then the legacy ``~/.vast_api_key``;
* :class:`Client`: JSON requests with ``Authorization: Bearer``, answers 429, 502, 503 and 504
  retried with a growing pause (0.15 s, then x1.5; the API sends no ``Retry-After``), a rejected
  key (401) never retried, a 429 that outlasts the retries one line saying what to do, and the
  paged ``GET /api/v1/instances/`` walk (``next_token``; ``"instances": null`` is no instance);
* one instance (``GET /api/v0/instances/{id}/``; ``"instances": null`` is a gone one), its
  start and stop (``PUT /api/v0/instances/{id}/`` with ``{"state": "running" | "stopped"}``,
  the documented "manage instance" call) and destroy (``DELETE``, a gone one is no error), and
  :func:`run_state`, which reads ``actual_status``, ``intended_status``, ``cur_state`` and
  ``is_bid`` into one word (``running``, ``starting``, ``stopped``, ``outbid``, ``scheduling``);
* the price of an instance (:func:`hourly_cost`): ``dph_total`` while it holds its GPU, its
  disk (``storage_total_cost``) once stopped -- a stopped instance still bills its disk;
* the description of an error answer (its body may be JSON of several shapes, text, or an HTML
  page from a proxy in front of the API: its title, never the page);
* the SSH endpoint of an instance: direct (``public_ipaddr`` and the host port of ``22/tcp``)
  when mapped, else Vast.ai's SSH proxy (``ssh_host``:``ssh_port``, plus one for Jupyter run
  types, like the vastai CLI);
* the inventory plugin's host names (sanitized label, ``<label>-<id>``, ``C.<id>``).

Errors are :class:`VastApiError` subclasses whose messages carry no secret and no context:
each caller puts them in its own words (a task failure, an inventory error, a tunnel log line).
"""

from __future__ import annotations

import html
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

DEFAULT_URL = "https://console.vast.ai"
LIST_PATH = "/api/v1/instances/"
INSTANCE_PATH = "/api/v0/instances/"
STATES = ("running", "stopped")  # what the manage-instance call accepts
GONE_ERRORS = frozenset({"not_found", "no_such_instance"})  # a destroyed instance
PAGE_LIMIT = 25  # the API's maximum page size
MAX_PAGES = 1000  # guards against a server that never stops handing out next_token
RETRYABLE = frozenset({429, 502, 503, 504})
BACKOFF_START = 0.15
BACKOFF_FACTOR = 1.5
DEFAULT_RETRIES = 4
DEFAULT_TIMEOUT = 30
IPV4_ANY = "0.0.0.0"  # noqa: S104 - a HostIp value in the API, nothing binds to it
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_ERROR_KEYS = ("error", "msg", "message", "detail")
MAX_DETAIL = 200  # characters of a non-JSON error body kept in a message
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


class VastApiError(Exception):
    """An answer of the Vast.ai API (or the lack of one) that the caller cannot use."""


class KeyRejected(VastApiError):
    """The API answered 401: the key is wrong, expired or missing. Never retried."""

    def __init__(self) -> None:
        super().__init__("Vast.ai rejected the API key (401 auth_error)")


class HttpStatusError(VastApiError):
    """An error answer other than 401 (after the retries); the message is its description."""

    def __init__(self, status: int, body: bytes, message: str | None = None) -> None:
        super().__init__(message or error_detail(status, body))
        self.status = status
        try:
            self.body: Any = json.loads(body)  # the JSON error body, when there is one
        except ValueError:
            self.body = None


class RateLimited(HttpStatusError):
    """429 answers that outlasted every retry; the message says what to do."""

    def __init__(self, body: bytes, tries: int) -> None:
        super().__init__(429, body, rate_limit_message(error_detail(429, body), tries))
        self.tries = tries


class ApiUnreachable(VastApiError):
    """No answer: name resolution, connection, TLS, timeout."""

    def __init__(self, reason: Any) -> None:
        super().__init__(f"cannot reach the Vast.ai API: {reason}")
        self.reason = reason


class BadAnswer(VastApiError):
    """An answer that does not have the documented shape."""


class SshEndpoint(NamedTuple):
    host: str
    port: int
    mode: str  # "direct" or "proxy"


# -- answers ---------------------------------------------------------------------------------


def strip_strings(value: Any) -> Any:
    """Strip whitespace from every string, recursively (the vastai client does the same)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return {k: strip_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_strings(v) for v in value]
    return value


def explain(data: Any) -> str:
    """``error: msg`` of a JSON error body (several shapes), or ''."""
    if not isinstance(data, dict):
        return ""
    return ": ".join(str(data[k]) for k in _ERROR_KEYS if data.get(k))


def plain_text(status: int, text: str) -> str:
    """A non-JSON error body as one short line: an HTML page (nginx, Cloudflare) by its title or
    else its text without tags, whitespace collapsed, a leading copy of the status dropped
    (``429 Too Many Requests`` -> ``Too Many Requests``), at most :data:`MAX_DETAIL` characters."""
    if text.lstrip().startswith("<"):
        title = _HTML_TITLE.search(text)
        text = html.unescape(title.group(1) if title else _HTML_TAG.sub(" ", text))
    line = " ".join(text.split())
    if line.startswith(f"{status} "):
        line = line[len(str(status)) + 1 :]
    return line[:MAX_DETAIL].rstrip()


def error_detail(status: int, body: bytes) -> str:
    """Describe an error answer; the body may be JSON (several shapes), text or an HTML page."""
    text = body.decode("utf-8", "replace").strip()
    try:
        explained = explain(json.loads(text))
    except ValueError:
        explained = ""
    if explained:
        return f"HTTP {status} {explained}"
    line = plain_text(status, text)
    return f"HTTP {status} {line}" if line else f"HTTP {status}"


def rate_limit_message(detail: str, tries: int) -> str:
    """One line for a 429 that outlasted the retries: the answer and what to do."""
    return (
        f"Vast.ai API rate limit ({detail}) persisted after {tries} "
        f"{'try' if tries == 1 else 'tries'}: wait a minute and retry, or lower the request rate"
    )


# -- the API key -----------------------------------------------------------------------------


def key_files() -> list[str]:
    """The files the key may be in, in the order they are read."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return [
        os.path.join(config_home, "vastai", "vast_api_key"),
        os.path.expanduser("~/.vast_api_key"),
    ]


def find_api_key(given: str | None = None, given_source: str = "") -> tuple[str, str] | None:
    """(key, where it came from): ``given`` (named ``given_source``) when not blank, else
    ``VAST_API_KEY``, else the first non-empty file of :func:`key_files`; None when there is
    no key anywhere."""
    if given and given.strip():
        return given.strip(), given_source
    env_key = os.environ.get("VAST_API_KEY", "").strip()
    if env_key:
        return env_key, "VAST_API_KEY"
    for path in key_files():
        try:
            with open(path, encoding="utf-8") as fh:
                key = fh.read().strip()
        except OSError:
            continue
        if key:
            return key, path
    return None


# -- HTTP ------------------------------------------------------------------------------------


class Client:
    """A small Vast.ai REST client over urllib. The key is sent, never part of a message.

    ``on_retry(detail, delay)`` is called before each pause of a retried answer."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        retries: int = DEFAULT_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        user_agent: str = "vastllm",
        on_retry: Callable[[str, float], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.retries = max(0, retries)
        self.timeout = timeout
        self.user_agent = user_agent
        self.on_retry = on_retry

    def call(self, method: str, path: str, body: Any = None, *, allow_empty: bool = False) -> Any:
        """``method`` ``path`` (with its query) and the JSON answer; ``body`` goes as JSON. An
        empty answer is ``{}`` with ``allow_empty``, else :class:`BadAnswer`."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        delay = BACKOFF_START
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(  # noqa: S310 - the https API URL (or loopback)
                self.url + path, data=data, headers=headers, method=method
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                    raw = resp.read()
            except urllib.error.HTTPError as exc:
                status, err_body = exc.code, exc.read() or b""
                if status == 401:
                    raise KeyRejected() from None
                if status in RETRYABLE and attempt < self.retries:
                    if self.on_retry is not None:
                        self.on_retry(error_detail(status, err_body), delay)
                    time.sleep(delay)
                    delay *= BACKOFF_FACTOR
                    continue
                if status == 429:
                    raise RateLimited(err_body, attempt + 1) from None
                raise HttpStatusError(status, err_body) from None
            except urllib.error.URLError as exc:
                raise ApiUnreachable(exc.reason) from None
            except OSError as exc:  # timeouts, resets
                raise ApiUnreachable(exc) from None
            if allow_empty and not raw.strip():
                return {}
            try:
                return json.loads(raw)
            except ValueError:
                raise BadAnswer("the answer is not JSON") from None
        raise BadAnswer("no answer")  # not reached: the loop returns or raises

    def instances(self) -> list[dict[str, Any]]:
        """Every instance of the account (``GET /api/v1/instances/``, all pages), strings
        stripped. ``"instances": null`` (the answer once the account's last instance is
        destroyed) is an empty page, as in the vastai client; a page without the key is not."""
        params = {"limit": str(PAGE_LIMIT)}
        rows: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = self.call("GET", LIST_PATH + "?" + urllib.parse.urlencode(params))
            if not isinstance(page, dict):
                raise BadAnswer("the answer is not a JSON object")
            found = page.get("instances")
            if found is None and "instances" in page:
                found = []
            if not isinstance(found, list):
                raise BadAnswer("the answer has no instance list")
            rows.extend(strip_strings(r) for r in found if isinstance(r, dict) and "id" in r)
            token = page.get("next_token")
            if not token:
                return rows
            params["after_token"] = str(token)
        raise BadAnswer(f"more than {MAX_PAGES} pages")

    def instance(self, instance_id: int) -> dict[str, Any] | None:
        """One instance (strings stripped), or None once it is gone (``"instances": null``)."""
        answer = self.call("GET", f"{INSTANCE_PATH}{int(instance_id)}/")
        if not isinstance(answer, dict) or "instances" not in answer:
            raise BadAnswer("the answer has no instance")
        row = answer["instances"]
        if row is None:
            return None
        if not isinstance(row, dict):
            raise BadAnswer("the instance is not a JSON object")
        return strip_strings(row)

    def set_state(self, instance_id: int, state: str) -> None:
        """Ask for ``state`` (``"running"`` or ``"stopped"``): the documented manage-instance
        call. A success answer means asked, not done: read :func:`run_state` after it."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        answer = self.call("PUT", f"{INSTANCE_PATH}{int(instance_id)}/", {"state": state},
                           allow_empty=True)
        if isinstance(answer, dict) and answer.get("success") is False:
            raise BadAnswer(explain(answer) or "the API refused the change")

    def stop(self, instance_id: int) -> None:
        """Stop the instance: the GPU is let go, the disk (and its bill) stays."""
        self.set_state(instance_id, "stopped")

    def start(self, instance_id: int) -> None:
        """Start a stopped instance; it may stay ``scheduling`` when its GPU was rented since."""
        self.set_state(instance_id, "running")

    def destroy(self, instance_id: int) -> bool:
        """Destroy the instance (every charge ends, the disk too); False when already gone."""
        try:
            self.call("DELETE", f"{INSTANCE_PATH}{int(instance_id)}/", allow_empty=True)
        except HttpStatusError as exc:
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            if exc.status == 404 or error in GONE_ERRORS:
                return False
            raise
        return True


# -- instances -------------------------------------------------------------------------------


def run_state(inst: dict[str, Any] | None) -> str:
    """One word for where an instance is: ``gone`` (None), ``running`` (``actual_status``),
    ``starting`` (its GPU held, the container loading), ``stopped`` (asked to stop, or created
    stopped), ``outbid`` (interruptible, meant to run, its GPU taken by a higher bid),
    ``scheduling`` (on-demand, meant to run, no GPU yet: the machine's GPU may be rented by
    someone else), else ``actual_status`` itself (``exited``, ``offline``...) or ``unknown``."""
    if inst is None:
        return "gone"
    actual, intended = inst.get("actual_status"), inst.get("intended_status")
    if actual == "running":
        return "running"
    if intended == "running" and inst.get("cur_state") == "running":
        return "starting"
    if intended == "running" and inst.get("cur_state") == "stopped":
        return "outbid" if inst.get("is_bid") else "scheduling"
    if intended == "stopped" or actual == "stopped":
        return "stopped"
    return str(actual) if actual else "unknown"


def hourly_cost(inst: dict[str, Any]) -> float:
    """What the instance bills now, $/h: ``dph_total`` (compute and disk) while it holds its
    GPU, its disk alone (``storage_total_cost``) once stopped."""
    field = "dph_total" if inst.get("cur_state") == "running" else "storage_total_cost"
    try:
        return float(inst.get(field) or 0)
    except (TypeError, ValueError):
        return 0.0



def host_port(ports: Any, container_port: str) -> int | None:
    """Host port mapped to a container port (``"22/tcp"``); the IPv4 entry first; HostPort is
    a string in the API. None when not mapped."""
    if not isinstance(ports, dict):
        return None
    entries = ports.get(container_port)
    if not isinstance(entries, list):
        return None
    ordered = sorted(
        (e for e in entries if isinstance(e, dict)), key=lambda e: e.get("HostIp") != IPV4_ANY
    )
    for entry in ordered:
        try:
            return int(str(entry.get("HostPort")))
        except (TypeError, ValueError):
            continue
    return None


def ssh_endpoint(inst: dict[str, Any], mode: str = "auto") -> SshEndpoint | None:
    """Direct (public IP + host port of 22/tcp) when mapped and ``mode`` is not ``"proxy"``,
    else the Vast.ai SSH proxy; None while the instance has neither."""
    direct_port = host_port(inst.get("ports"), "22/tcp")
    public_ip = inst.get("public_ipaddr")
    if mode != "proxy" and public_ip and direct_port:
        return SshEndpoint(public_ip, direct_port, "direct")
    host, port = inst.get("ssh_host"), inst.get("ssh_port")
    if host and isinstance(port, int):
        if "jupyter" in (inst.get("image_runtype") or ""):
            port += 1  # Vast.ai's proxy: Jupyter run types listen one port higher
        return SshEndpoint(host, port, "proxy")
    return None


def safe_label(label: Any) -> str:
    """The label as a host name: whitespace stripped, characters other than letters, digits,
    ``.``, ``_`` and ``-`` replaced by ``-``; '' for no label."""
    if not isinstance(label, str):
        return ""
    return _UNSAFE_NAME.sub("-", label.strip()).strip("-")


def host_names(instances: list[dict[str, Any]]) -> list[str]:
    """The vastai inventory plugin's host names, one per instance: the safe label, or
    ``C.<id>`` without one; instances sharing a label are all named ``<label>-<id>``."""
    counts = Counter(safe_label(inst.get("label")) for inst in instances)
    names: list[str] = []
    used: set[str] = set()
    for inst in instances:
        base = safe_label(inst.get("label"))
        if not base:
            name = f"C.{inst['id']}"
        elif counts[base] > 1:
            name = f"{base}-{inst['id']}"
        else:
            name = base
        while name in used:  # a label that happens to equal another's generated name
            name = f"{name}-{inst['id']}"
        used.add(name)
        names.append(name)
    return names


def host_name_forms(inst: dict[str, Any]) -> set[str]:
    """Every name :func:`host_names` may give this instance."""
    clean = safe_label(inst.get("label"))
    forms = {f"C.{inst['id']}"}
    if clean:
        forms |= {clean, f"{clean}-{inst['id']}"}
    return forms
