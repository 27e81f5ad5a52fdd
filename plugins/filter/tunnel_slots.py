# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``tunnel_slots``: each GPU host's tunnel slot, kept from run to run.

A host's local tunnel ports are ``local_port + slot * tunnel_port_stride``. The slot a host was
given stays its own while it is in ``tunnel_hosts`` (the tunnel role keeps the map in
``tunnel_slots_file``), so hosts joining or leaving never move another host's ports: that is what
lets the workstation gateway take a fleet change without restarting the tunnels that did not
change. A new host gets the lowest slot no current host holds, in ``tunnel_hosts`` order, so the
first run gives what the hosts' positions gave before and a single host always has slot 0. A
host that left drops out of the map (the role stops its tunnel in the same run).

    {{ tunnel_hosts | tunnel_slots(known_map) }}  -> {"gpu1": 0, "gpu2": 1}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def tunnel_slots(hosts: Sequence[str], known: Mapping[str, Any] | None = None) -> dict[str, int]:
    current = set(hosts)
    slots = {str(n): int(v) for n, v in (known or {}).items() if str(n) in current}
    taken = set(slots.values())
    next_free = 0
    for host in hosts:
        if host in slots:
            continue
        while next_free in taken:
            next_free += 1
        slots[host] = next_free
        taken.add(next_free)
    return {host: slots[host] for host in hosts}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"tunnel_slots": tunnel_slots}
