# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible dynamic inventory plugin: the caller's Vast.ai instances as SSH hosts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vastai
short_description: Vast.ai instances as inventory hosts
description:
  - Lists the instances of a Vast.ai account through C(GET /api/v1/instances/), following
    C(next_token) until the last page, and adds each one as a host reachable over SSH as C(root).
  - Uses a YAML configuration file whose name ends in C(vast.yml), C(vast.yaml) or C(vastai.yml).
  - Every host joins the groups C(vast) and C(gpu_hosts) (the group the vastllm playbooks target).
  - The host name is the instance label (whitespace stripped, characters other than letters,
    digits, C(.), C(_) and C(-) replaced by C(-)), or C(C.<id>) when the label is empty.
    Instances sharing a label are all named C(<label>-<id>).
  - The SSH endpoint is the direct one (C(public_ipaddr) and the host port mapped to C(22/tcp))
    when the instance maps C(22/tcp), otherwise Vast.ai's SSH proxy (C(ssh_host):C(ssh_port), plus
    one for Jupyter run types, like the vastai CLI).
  - Host variables C(vast_*) copy the API fields (any of them may be null) plus
    C(vast_gpu_ram_gib), C(vast_ssh_mode) (C(direct) or C(proxy)) and C(vast_ports)
    (container port to host port).
  - HTTP 429, 502, 503 and 504 answers are retried with a growing pause (0.15 s, then x1.5);
    the API sends no C(Retry-After).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a configuration of the C(vastai) plugin.
    type: string
    required: true
    choices: ['vastai']
  api_key:
    description:
      - Vast.ai API key, sent as C(Authorization Bearer). Never logged. May be a template,
        for example a lookup.
      - When unset, the plugin reads the environment variable C(VAST_API_KEY), then the file
        C($XDG_CONFIG_HOME/vastai/vast_api_key) (default C(~/.config/vastai/vast_api_key)),
        then the legacy file C(~/.vast_api_key), the same order as the vastai CLI/SDK.
    type: string
    no_log: true
  api_url:
    description: Base URL of the Vast.ai console API.
    type: string
    default: https://console.vast.ai
  statuses:
    description:
      - Only instances whose C(actual_status) is in this list become hosts.
      - Use V(null) in the list to include instances that are still being provisioned.
    type: list
    elements: string
    default: [running]
  ssh_mode:
    description:
      - V(auto) uses the direct endpoint when the instance maps C(22/tcp), else the proxy.
      - V(direct) wants the direct endpoint and warns when it has to fall back to the proxy.
      - V(proxy) always uses C(ssh_host):C(ssh_port).
    type: string
    default: auto
    choices: [auto, direct, proxy]
  retries:
    description: How many times a request answered with 429, 502, 503 or 504 is repeated.
    type: int
    default: 4
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 30
"""

EXAMPLES = r"""
---
# inventory/vast.yml; key from VAST_API_KEY or ~/.config/vastai/vast_api_key
plugin: vastai

---
# group by GPU model, add stopped instances, cache the listing for five minutes
plugin: vastai
statuses: [running, exited]
keyed_groups:
  - key: vast_gpu_name
    prefix: gpu
groups:
  big_gpus: vast_gpu_ram_gib >= 40
compose:
  model_max_vram_gib: vast_gpu_ram_gib * vast_num_gpus
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/vastllm/inventory
cache_timeout: 300
"""

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402
from ansible.plugins.inventory import (  # noqa: E402
    BaseInventoryPlugin,
    Cacheable,
    Constructable,
)
from ansible.utils.display import Display  # noqa: E402

display = Display()

LIST_PATH = "/api/v1/instances/"
PAGE_LIMIT = 25  # the API's maximum page size
RETRYABLE = frozenset({429, 502, 503, 504})
BACKOFF_START = 0.15
BACKOFF_FACTOR = 1.5
MAX_PAGES = 1000  # guards against a server that never stops handing out next_token
GROUPS = ("vast", "gpu_hosts")
BAD_KEY_MSG = (
    "Vast.ai rejected the API key (401 auth_error): "
    "check VAST_API_KEY / ~/.config/vastai/vast_api_key"
)
# API fields copied to vast_<field> host variables when present
HOSTVAR_FIELDS = (
    "id",
    "label",
    "gpu_name",
    "num_gpus",
    "gpu_ram",
    "disk_space",
    "dph_total",
    "actual_status",
    "cur_state",
    "intended_status",
    "status_msg",
    "image_uuid",
    "image_runtype",
    "public_ipaddr",
    "ssh_host",
    "ssh_port",
    "cuda_max_good",
    "driver_version",
    "machine_id",
    "host_id",
    "geolocation",
    "cpu_ram",
    "cpu_cores_effective",
)
IPV4_ANY = "0.0.0.0"  # noqa: S104 - a HostIp value in the API, nothing binds to it
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class VastApiError(Exception):
    """An answer from the Vast.ai API that the plugin cannot use."""


def _strip(value: Any) -> Any:
    """Strip whitespace from every string, recursively (the vastai client does the same)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _error_detail(status: int, body: bytes) -> str:
    """Describe an error answer; the body may be JSON (several shapes) or plain text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("error", "msg", "message", "detail") if data.get(k)]
        if parts:
            return f"HTTP {status} " + ": ".join(parts)
    return f"HTTP {status} {text[:200]}" if text else f"HTTP {status}"


def find_api_key(option_value: str | None) -> str:
    """Resolve the key: option, VAST_API_KEY, XDG config file, legacy file."""
    if option_value and option_value.strip():
        return option_value.strip()
    env_key = os.environ.get("VAST_API_KEY", "").strip()
    if env_key:
        return env_key
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    files = [
        os.path.join(config_home, "vastai", "vast_api_key"),
        os.path.expanduser("~/.vast_api_key"),
    ]
    for path in files:
        try:
            with open(path, encoding="utf-8") as fh:
                key = fh.read().strip()
        except OSError:
            continue
        if key:
            return key
    raise AnsibleParserError(
        "No Vast.ai API key found: looked at the inventory option api_key, the environment "
        "variable VAST_API_KEY and the files " + ", ".join(files)
    )


def ssh_endpoint(inst: dict[str, Any], mode: str) -> tuple[str | None, int | None, str | None]:
    """Pick (host, port, 'direct'|'proxy') for an instance, or (None, None, None)."""
    direct_port = _host_port(inst.get("ports"), "22/tcp")
    public_ip = inst.get("public_ipaddr")
    if mode != "proxy" and public_ip and direct_port:
        return public_ip, direct_port, "direct"
    host, port = inst.get("ssh_host"), inst.get("ssh_port")
    if host and isinstance(port, int):
        if "jupyter" in (inst.get("image_runtype") or ""):
            port += 1  # Vast.ai's proxy: Jupyter run types listen one port higher
        return host, port, "proxy"
    return None, None, None


def _host_port(ports: Any, container_port: str) -> int | None:
    """Host port mapped to a container port; IPv4 entry first; HostPort is a string."""
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


def _port_map(ports: Any) -> dict[str, int]:
    if not isinstance(ports, dict):
        return {}
    result = {}
    for name in ports:
        port = _host_port(ports, name)
        if port is not None:
            result[str(name)] = port
    return result


def host_names(instances: list[dict[str, Any]]) -> list[str]:
    """One inventory name per instance: sanitized label or C.<id>; shared labels get -<id>."""
    bases: list[str | None] = []
    for inst in instances:
        label = inst.get("label")
        clean = _UNSAFE_NAME.sub("-", label.strip()).strip("-") if isinstance(label, str) else ""
        bases.append(clean or None)
    counts = Counter(b for b in bases if b)
    names: list[str] = []
    used: set[str] = set()
    for inst, base in zip(instances, bases, strict=True):
        if base is None:
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


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Vast.ai instances as hosts in the groups vast and gpu_hosts."""

    NAME = "vastai"

    def verify_file(self, path: str) -> bool:
        if not super().verify_file(path):
            return False
        return path.endswith(("vast.yml", "vast.yaml", "vastai.yml", "vastai.yaml"))

    # -- HTTP ------------------------------------------------------------------------------

    def _get_json(self, url: str, key: str) -> dict[str, Any]:
        """GET url as JSON, retrying 429/502/503/504 with backoff."""
        retries = max(0, int(self.get_option("retries")))
        timeout = int(self.get_option("timeout"))
        delay = BACKOFF_START
        for attempt in range(retries + 1):
            try:
                resp = open_url(
                    url,
                    method="GET",
                    headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
                    timeout=timeout,
                    http_agent="vastllm-inventory",
                    validate_certs=True,
                )
                body = resp.read()
            except urllib.error.HTTPError as exc:
                status, err_body = exc.code, exc.read() or b""
                if status == 401:
                    raise AnsibleParserError(BAD_KEY_MSG) from None
                if status in RETRYABLE and attempt < retries:
                    display.vvv(f"vastai: {_error_detail(status, err_body)}; retry in {delay:.2f}s")
                    time.sleep(delay)
                    delay *= BACKOFF_FACTOR
                    continue
                raise VastApiError(_error_detail(status, err_body)) from None
            except urllib.error.URLError as exc:
                raise VastApiError(f"cannot reach the Vast.ai API: {exc.reason}") from None
            except OSError as exc:  # timeouts, resets
                raise VastApiError(f"cannot reach the Vast.ai API: {exc}") from None
            try:
                data = json.loads(body)
            except ValueError:
                raise VastApiError("the answer is not JSON") from None
            if not isinstance(data, dict):
                raise VastApiError("the answer is not a JSON object")
            return data
        raise VastApiError("no answer")  # not reached: the loop returns or raises

    def _fetch_instances(self, key: str) -> list[dict[str, Any]]:
        """All instances of the account, every page, strings stripped."""
        base = str(self.get_option("api_url")).rstrip("/") + LIST_PATH
        params: dict[str, str] = {"limit": str(PAGE_LIMIT)}
        instances: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            url = base + "?" + urllib.parse.urlencode(params)
            try:
                page = self._get_json(url, key)
            except VastApiError as exc:
                raise AnsibleParserError(f"Vast.ai instance list ({base}): {exc}") from None
            rows = page.get("instances") or []
            if not isinstance(rows, list):
                raise AnsibleParserError(f"Vast.ai instance list ({base}): 'instances' is no list")
            instances.extend(_strip(r) for r in rows if isinstance(r, dict) and "id" in r)
            token = page.get("next_token")
            if not token:
                return instances
            params["after_token"] = str(token)
        raise AnsibleParserError(f"Vast.ai instance list ({base}): more than {MAX_PAGES} pages")

    # -- inventory -------------------------------------------------------------------------

    def _host_vars(self, inst: dict[str, Any], mode: str, name: str) -> dict[str, Any]:
        hostvars: dict[str, Any] = {
            f"vast_{field}": inst[field] for field in HOSTVAR_FIELDS if field in inst
        }
        gpu_ram = inst.get("gpu_ram")
        if isinstance(gpu_ram, int | float) and not isinstance(gpu_ram, bool):
            hostvars["vast_gpu_ram_gib"] = round(gpu_ram / 1024, 1)
        hostvars["vast_ports"] = _port_map(inst.get("ports"))
        host, port, kind = ssh_endpoint(inst, mode)
        hostvars["vast_ssh_mode"] = kind
        if host is None:
            if inst.get("actual_status") == "running":
                display.warning(f"vastai: instance {inst['id']} ({name}) has no SSH endpoint yet")
        else:
            if mode == "direct" and kind == "proxy":
                display.warning(
                    f"vastai: instance {inst['id']} ({name}) maps no 22/tcp; using the SSH proxy"
                )
            hostvars.update(ansible_host=host, ansible_port=port)
        hostvars["ansible_user"] = "root"
        return hostvars

    def _populate(self, instances: list[dict[str, Any]]) -> None:
        statuses = self.get_option("statuses")
        wanted = {None if s in (None, "", "null", "None") else str(s) for s in statuses}
        chosen = sorted(
            (i for i in instances if i.get("actual_status") in wanted), key=lambda i: i["id"]
        )
        mode = self.get_option("ssh_mode")
        strict = self.get_option("strict")
        for group in GROUPS:
            self.inventory.add_group(group)
        for inst, name in zip(chosen, host_names(chosen), strict=True):
            for group in GROUPS:
                self.inventory.add_host(name, group=group)
            hostvars = self._host_vars(inst, mode, name)
            for var, value in hostvars.items():
                self.inventory.set_variable(name, var, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(
                self.get_option("groups"), hostvars, name, strict=strict
            )
            self._add_host_to_keyed_groups(
                self.get_option("keyed_groups"), hostvars, name, strict=strict
            )

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = bool(self.get_option("cache"))
        instances = None
        if use_cache and cache:
            try:
                instances = self._cache[cache_key]
            except KeyError:
                instances = None
        if not isinstance(instances, list):
            key_option = self.get_option("api_key")
            if key_option and self.templar.is_template(key_option):
                key_option = self.templar.template(key_option)
            instances = self._fetch_instances(find_api_key(key_option))
            if use_cache:
                self._cache[cache_key] = instances
        self._populate(instances)
