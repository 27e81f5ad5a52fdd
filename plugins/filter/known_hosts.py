# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``ssh_known_name``: the name ssh pins a host's key under in a known_hosts file.

The host's address on port 22, else ``[address]:port`` (a Vast.ai proxy endpoint such as
``[ssh5.vast.ai]:41022`` too). The tunnel role's specs and host key check, its forget.yml and the
vastai_instance role all name entries this way, so they find the ones Ansible's ssh wrote.

    {{ ansible_host | ssh_known_name(ansible_port | default(22)) }}  -> "[203.0.113.7]:41022"
"""

from __future__ import annotations

from typing import Any


def ssh_known_name(address: object, port: object = 22) -> str:
    number = int(str(port))
    return str(address) if number == 22 else f"[{address}]:{number}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ssh_known_name": ssh_known_name}
