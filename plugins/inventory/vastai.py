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
notes:
  - The Vast.ai API client is C(plugins/module_utils/vastai_api.py) of the vastllm checkout
    (shared with the C(vastai_instance) module and the tunnel resolver); the plugin loads it by path
    from next to its own directory.
  - Enable it by name in C(enable_plugins) (as the vastllm C(ansible.cfg) does), without
    C(ansible.builtin.auto). With C(auto) enabled too, a source the plugin failed on is parsed a
    second time, sending every request and printing every error twice.
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

import importlib.util  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleError, AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import (  # noqa: E402
    BaseInventoryPlugin,
    Cacheable,
    Constructable,
)
from ansible.utils.display import Display  # noqa: E402

display = Display()

SHARED_NAME = "vastllm_vastai_api"
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
    "dph_base",
    "storage_total_cost",
    "start_date",
    "is_bid",
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


def _load_shared() -> ModuleType:
    """plugins/module_utils/vastai_api.py, by its path next to this plugin's directory.

    On the controller ansible-core imports ansible.module_utils.* from its own package only (the
    module_utils setting serves the modules it ships to hosts), so the plugin cannot import the
    shared client under that name."""
    loaded = sys.modules.get(SHARED_NAME)
    if loaded is not None:
        return loaded
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, os.pardir, "module_utils", "vastai_api.py"))
    spec = importlib.util.spec_from_file_location(SHARED_NAME, path)
    if not os.path.isfile(path) or spec is None or spec.loader is None:
        raise AnsibleError(
            f"The vastai inventory plugin needs its Vast.ai API client {path}: keep the plugin in "
            "the plugins/inventory directory of the vastllm checkout, next to plugins/module_utils"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[SHARED_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[SHARED_NAME]
        raise
    return module


vastai_api = _load_shared()


def _port_map(ports: Any) -> dict[str, int]:
    """Container port to host port, for every mapped port."""
    if not isinstance(ports, dict):
        return {}
    result = {}
    for name in ports:
        port = vastai_api.host_port(ports, name)
        if port is not None:
            result[str(name)] = port
    return result


def _log_retry(detail: str, delay: float) -> None:
    display.vvv(f"vastai: {detail}; retry in {delay:.2f}s")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Vast.ai instances as hosts in the groups vast and gpu_hosts."""

    NAME = "vastai"

    def verify_file(self, path: str) -> bool:
        if not super().verify_file(path):
            return False
        return path.endswith(("vast.yml", "vast.yaml", "vastai.yml", "vastai.yaml"))

    # -- HTTP ------------------------------------------------------------------------------

    def _api_key(self) -> str:
        """The api_key option (templated), else VAST_API_KEY, else the key files."""
        key_option = self.get_option("api_key")
        if key_option and self.templar.is_template(key_option):
            key_option = self.templar.template(key_option)
        found = vastai_api.find_api_key(key_option, "the inventory option api_key")
        if found is None:
            raise AnsibleParserError(
                "No Vast.ai API key found: looked at the inventory option api_key, the "
                "environment variable VAST_API_KEY and the files "
                + ", ".join(vastai_api.key_files())
            )
        return str(found[0])

    def _fetch_instances(self, key: str) -> list[dict[str, Any]]:
        """All instances of the account, every page, strings stripped."""
        url = str(self.get_option("api_url"))
        client = vastai_api.Client(
            url,
            key,
            retries=int(self.get_option("retries")),
            timeout=int(self.get_option("timeout")),
            user_agent="vastllm-inventory",
            on_retry=_log_retry,
        )
        try:
            instances: list[dict[str, Any]] = client.instances()
        except vastai_api.KeyRejected:
            raise AnsibleParserError(BAD_KEY_MSG) from None
        except vastai_api.VastApiError as exc:
            base = url.rstrip("/") + vastai_api.LIST_PATH
            raise AnsibleParserError(f"Vast.ai instance list ({base}): {exc}") from None
        return instances

    # -- inventory -------------------------------------------------------------------------

    def _host_vars(self, inst: dict[str, Any], mode: str, name: str) -> dict[str, Any]:
        hostvars: dict[str, Any] = {
            f"vast_{field}": inst[field] for field in HOSTVAR_FIELDS if field in inst
        }
        gpu_ram = inst.get("gpu_ram")
        if isinstance(gpu_ram, int | float) and not isinstance(gpu_ram, bool):
            hostvars["vast_gpu_ram_gib"] = round(gpu_ram / 1024, 1)
        hostvars["vast_ports"] = _port_map(inst.get("ports"))
        host, port, kind = vastai_api.ssh_endpoint(inst, mode) or (None, None, None)
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
        for inst, name in zip(chosen, vastai_api.host_names(chosen), strict=True):
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

    def _private_cache_dir(self) -> None:
        """The cache holds each instance's jupyter_token and extra_env: 0700, so its files
        (written by Ansible's cache plugin) are the user's alone."""
        connection = self.get_option("cache_connection")
        if connection:
            path = os.path.expanduser(str(connection))
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)

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
            instances = self._fetch_instances(self._api_key())
            if use_cache:
                self._private_cache_dir()
                self._cache[cache_key] = instances
        self._populate(instances)
