"""Token estimate shared by ``/v1/messages/count_tokens`` and the context-length check.

The proxy does not load the model's tokenizer (it may sit on another host and change at any
time), so it estimates: **one token per 4 bytes of UTF-8 text**, rounded up, over every text the
model will read (system and message text, tool-call names and JSON arguments, tool results, the
JSON of the tool definitions), plus 4 tokens of chat-template overhead per message and 3 for the
reply's start, plus a flat 1,000 tokens per image. BPE tokenizers average 3.5-4.5 bytes per token
on English prose and code, so the figure is typically within 20% of the real count; JSON-heavy and
non-Latin text runs higher. The same figure decides the 400 for prompts longer than the model's
context, so the two always agree.
"""

from __future__ import annotations

from vastllm.proxy import validate
from vastllm.proxy.neutral import ChatRequest, Message

BYTES_PER_TOKEN = 4
PER_MESSAGE = 4
REPLY_PRIMING = 3
PER_IMAGE = 1000


def text_tokens(text: str) -> int:
    """Estimated tokens of one text."""
    if not text:
        return 0
    n = len(text)
    if not text.isascii():
        n = len(text.encode("utf-8"))
    return -(-n // BYTES_PER_TOKEN)


def message_tokens(msg: Message) -> int:
    n = PER_MESSAGE + text_tokens(msg.get("content") or "")
    for call in msg.get("tool_calls") or ():
        n += text_tokens(call["name"]) + text_tokens(call["arguments"])
    images = msg.get("images")
    if images:
        n += PER_IMAGE * len(images)
    return n


def estimate(req: ChatRequest) -> int:
    """Estimated prompt tokens of a whole request (see module docstring)."""
    n = REPLY_PRIMING
    for msg in req.messages:
        n += message_tokens(msg)
    if req.tools:
        n += -(-len(validate.dumps(req.tools)) // BYTES_PER_TOKEN)
    return n
