"""The gpu_facts module_utils (plugins/module_utils) imported under the names they have on a host.

Ansible ships plugins/module_utils/<name>.py to the host as ``ansible.module_utils.<name>``, and
these modules import each other by that name (which is also how Ansible finds what to ship). For
the tests the directory joins the path of the installed ``ansible.module_utils`` package, so the
same imports work here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import ansible.module_utils

from tests.support import REPO

MODULE_UTILS = REPO / "plugins" / "module_utils"
# What the gpu_facts module runs on the host, each module after the ones it imports.
GPU_MODULE_UTILS = (
    "gpu_model",
    "gpu_smi_parsers",
    "gpu_nvidia_smi",
    "gpu_nvml",
    "host_capacity",
    "gpu_facts_collect",
)


def load(name: str) -> ModuleType:
    """plugins/module_utils/<name>.py, one of GPU_MODULE_UTILS, as ansible.module_utils.<name>."""
    if name not in GPU_MODULE_UTILS:
        raise ValueError(f"{name} is not one of the gpu_facts module_utils {GPU_MODULE_UTILS}")
    search_path = ansible.module_utils.__path__
    if str(MODULE_UTILS) not in search_path:
        search_path.append(str(MODULE_UTILS))
    module = importlib.import_module(f"ansible.module_utils.{name}")
    if Path(str(module.__file__)).parent != MODULE_UTILS:
        raise ImportError(f"ansible.module_utils.{name} is {module.__file__}, not the repository's")
    return module
