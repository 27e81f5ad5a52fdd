"""Conversation affinity: the requests of one conversation go to the upstream that answered it
before, while that upstream is ready, so its prefix cache (vLLM's, Ollama's loaded context) is
reused instead of being rebuilt on another host.

A conversation is known by its start: the system prompt (Claude Code's billing-header line is
already gone: it changes per session, see :mod:`vastllm.proxy.anthropic.parse`) and the first
user message. Every later turn of a Claude Code conversation resends both unchanged, while two
conversations almost never share them. The map is bounded (least recently used out), so memory
stays flat however many conversations pass.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from vastllm.proxy.neutral import ChatRequest

MAX_CONVERSATIONS = 4096


def conversation_key(req: ChatRequest) -> str | None:
    """The key of the conversation ``req`` belongs to; None without a user message."""
    h = hashlib.blake2b(digest_size=16)
    for m in req.messages:
        role = m.get("role")
        if role == "system":
            h.update(b"s\0" + str(m.get("content", "")).encode() + b"\0")
        elif role == "user":
            h.update(b"u\0" + str(m.get("content", "")).encode())
            return h.hexdigest()
    return None


class Affinity:
    """Conversation key -> the name of the upstream that last answered it."""

    __slots__ = ("_map", "_max")

    def __init__(self, max_conversations: int = MAX_CONVERSATIONS) -> None:
        self._map: OrderedDict[str, str] = OrderedDict()
        self._max = max_conversations

    def preferred(self, key: str | None) -> str | None:
        if key is None:
            return None
        name = self._map.get(key)
        if name is not None:
            self._map.move_to_end(key)
        return name

    def answered(self, key: str | None, upstream: str) -> None:
        if key is None:
            return
        self._map[key] = upstream
        self._map.move_to_end(key)
        if len(self._map) > self._max:
            self._map.popitem(last=False)

    def forget(self, upstream: str) -> None:
        """Drop the conversations of an upstream that is gone (a reload removed it)."""
        for key in [k for k, v in self._map.items() if v == upstream]:
            del self._map[key]

    def __len__(self) -> int:
        return len(self._map)
