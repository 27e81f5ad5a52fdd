#!/usr/bin/env python3
# ruff: noqa: UP031, UP017, B905
# (kept runnable on Python 3.8: no datetime.UTC, no zip(strict=); %-formatting kept as is)
"""TEST DOUBLE of the Ollama server and CLI (not Ollama; no model runs here).

Standard library only, Python 3.8+, one file, so it can be copied into a container that has only
python3 (installed as ``ollama``). It speaks the documented HTTP API subset with the recorded wire
shapes (tests/fixtures/ollama-api): ``GET|HEAD /``, ``/api/version``, ``/api/tags``, ``/api/ps``,
``POST /api/show|pull|create|chat|generate``, ``DELETE /api/delete``, ``HEAD|POST
/api/blobs/<digest>``, ``POST /v1/chat/completions`` (JSON and SSE), ``GET /v1/models``, and
``POST /v1/messages`` (Anthropic compatibility, JSON and SSE) when the ``version`` it plays is
0.14.0 or later (older releases answer it 404, as Ollama before 0.14.0 did).
Models live as manifests and blobs under ``OLLAMA_MODELS`` (default ``~/.ollama/models``) in
Ollama's layout, so ``pull`` survives a restart; the weights are a few placeholder bytes.

Answers are a deterministic function of the request: the reply is ``reply_template`` with
``{last}`` replaced by the last user message (default ``"You said: {last}"``); a ``tool`` message
last gives ``"Tool <name> returned: <content>"``; when ``tools`` are given and the last user
message names one of them (as a whole word), the answer is a call of that tool whose string
arguments are the text after the tool's name. ``prompt_eval_count`` is one token per 4 characters
of the prompt, capped at ``num_ctx`` (``options.num_ctx``, else ``OLLAMA_CONTEXT_LENGTH``, else
4096) the way a real server truncates; ``num_predict`` and ``stop`` are honoured.

``/v1/messages`` follows Ollama's docs (docs/api/anthropic-compatibility.mdx) and its mapping onto
``/api/chat`` (anthropic/anthropic.go, middleware/anthropic.go): the same reply logic as
/api/chat; ``system`` (string or text blocks), text, base64 ``image``, ``tool_use`` and
``tool_result`` blocks, ``tools`` (``input_schema``), ``max_tokens`` (required, num_predict),
``stop_sequences``, ``temperature``/``top_p``/``top_k``; no ``options``, so the context is
``OLLAMA_CONTEXT_LENGTH``'s. The answer has ``id``, ``type``, ``role``, ``model``, ``content``
(text, tool_use), ``stop_reason`` (end_turn, max_tokens, tool_use) and ``usage``; errors are
``{"type": "error", "error": {"type", "message"}, "request_id"}``; the stream is message_start,
content_block_start/delta/stop (text_delta per token; a tool call's input in one
input_json_delta), message_delta, message_stop, no ping and no error event (a failure mid-stream
just ends it, as Ollama's docs say). Not there, as in Ollama: ``/v1/messages/count_tokens``,
``tool_choice``, thinking output.

Knobs (``OLLAMA_DOUBLE_CONFIG`` = JSON at start, or ``POST /__double__/config`` at run time):
``reply_template``, ``token_delay`` (s per streamed token), ``first_token_delay``, ``hang``
(generation endpoints never answer while true), ``fail_status`` + ``fail_message`` (generation
endpoints answer that error), ``fail_after_tokens`` (stream an ``{"error"}`` line after N tokens),
``pull_fail`` (``no_space`` | ``network`` | ``dns`` | ``stream``: the HTTP/2 stream error seen
behind corporate proxies), ``pull_fail_only`` (names whose pulls fail;
null = every pull), ``pull_step_delay``, ``pullable`` (names
the fake registry has; null = any), ``vram_bytes`` (``size_vram`` in /api/ps; null = all in VRAM),
``context_length`` (default num_ctx), ``model_context_length`` (native context in /api/show),
``tool_calls_as_text`` (a tool call comes back as ``{"name": ..., "arguments": ...}`` JSON in the
message text, no ``tool_calls``: what models with a broken tool template do),
``models`` (list of names to install at once), ``version`` (what /api/version answers and which
release's routes exist; default ``OLLAMA_DOUBLE_VERSION``, else the release the ollama role pins).
Introspection: ``GET /__double__/last_request`` (last generation request, with the options used,
``num_ctx`` and whether the prompt was truncated), ``GET /__double__/stats`` (request counts),
``POST /__double__/reset`` (clear stats).

CLI (talks to the running server over HTTP, like the real one): ``serve``, ``pull NAME``,
``list``/``ls``, ``ps``, ``show NAME``, ``rm NAME``, ``create NAME -f Modelfile``, ``--version``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("OLLAMA_DOUBLE_VERSION", "0.40.2")  # roles/ollama's ollama_version
REGISTRY = "registry.ollama.ai"
MT_MODEL = "application/vnd.ollama.image.model"
MT_PARAMS = "application/vnd.ollama.image.params"
MT_SYSTEM = "application/vnd.ollama.image.system"
MT_TEMPLATE = "application/vnd.ollama.image.template"
MT_LICENSE = "application/vnd.ollama.image.license"

DEFAULT_KNOBS = {
    "reply_template": "You said: {last}",
    "token_delay": 0.0,
    "first_token_delay": 0.0,
    "hang": False,
    "fail_status": 0,
    "fail_message": "the model failed to generate a response",
    "fail_after_tokens": -1,
    "pull_fail": "",
    "pull_fail_only": None,
    "pull_step_delay": 0.0,
    "pullable": None,
    "vram_bytes": None,
    "context_length": int(os.environ.get("OLLAMA_CONTEXT_LENGTH") or 4096),
    "model_context_length": 32768,
    "tool_calls_as_text": False,
    "version": VERSION,
}


# ----------------------------------------------------------------------------------------------
# names, times, sizes


def dumps(obj):
    """Compact JSON, as Go's encoder writes it."""
    return json.dumps(obj, separators=(",", ":"))


def parse_name(name):
    """'llama3.2' -> (host, namespace, model, tag) as Ollama resolves it."""
    name = name.strip()
    tag = "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) == 1:
        return REGISTRY, "library", parts[0], tag
    if len(parts) == 2:
        return REGISTRY, parts[0], parts[1], tag
    return parts[0], "/".join(parts[1:-1]), parts[-1], tag


def display_name(name):
    host, ns, model, tag = parse_name(name)
    if host == REGISTRY and ns == "library":
        return "%s:%s" % (model, tag)
    if host == REGISTRY:
        return "%s/%s:%s" % (ns, model, tag)
    return "%s/%s/%s:%s" % (host, ns, model, tag)


def rfc3339(ts):
    dt = datetime.datetime.fromtimestamp(ts).astimezone()
    base = dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    off = dt.strftime("%z")
    return "%s%s:%s" % (base, off[:3], off[3:]) if off else base + "Z"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def fake_params(model, tag):
    m = re.search(r"(\d+(?:\.\d+)?)b", tag.lower()) or re.search(r"(\d+(?:\.\d+)?)b", model.lower())
    return float(m.group(1)) if m else 3.2


def human_size(n):
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d B" % n


def estimate_tokens(text):
    return (len(text) + 3) // 4


# ----------------------------------------------------------------------------------------------
# model store in Ollama's on-disk layout


class Store:
    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()

    def manifest_path(self, name):
        host, ns, model, tag = parse_name(name)
        return os.path.join(self.root, "manifests", host, ns, model, tag)

    def blob_path(self, digest):
        return os.path.join(self.root, "blobs", digest.replace(":", "-"))

    def write_blob(self, data):
        digest = "sha256:" + sha256_hex(data)
        path = self.blob_path(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        return digest

    def read_manifest(self, name):
        try:
            with open(self.manifest_path(name), "rb") as f:
                raw = f.read()
        except OSError:
            return None, None
        return json.loads(raw.decode()), raw

    def exists(self, name):
        return os.path.exists(self.manifest_path(name))

    def write_manifest(self, name, config, layers):
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": config,
            "layers": layers,
        }
        path = self.manifest_path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(manifest, f)

    def delete(self, name):
        try:
            os.remove(self.manifest_path(name))
            return True
        except OSError:
            return False

    def names(self):
        base = os.path.join(self.root, "manifests")
        out = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, base).split(os.sep)
            if len(rel) < 3:
                continue
            for tag in files:
                host, ns, model = rel[0], "/".join(rel[1:-1]), rel[-1]
                out.append(display_name("%s/%s/%s:%s" % (host, ns, model, tag)))
        return sorted(out)

    def config_of(self, manifest):
        try:
            with open(self.blob_path(manifest["config"]["digest"]), "rb") as f:
                return json.loads(f.read().decode())
        except (OSError, ValueError, KeyError):
            return {}

    def layer_text(self, manifest, media_type):
        for layer in manifest.get("layers", []):
            if layer.get("mediaType") == media_type:
                try:
                    with open(self.blob_path(layer["digest"]), "rb") as f:
                        return f.read().decode("utf-8", "replace")
                except OSError:
                    return ""
        return ""

    def info(self, name):
        """tags-style entry for an installed model, or None."""
        manifest, raw = self.read_manifest(name)
        if manifest is None:
            return None
        cfg = self.config_of(manifest)
        size = sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
        family = cfg.get("model_family", "llama")
        return {
            "name": display_name(name),
            "model": display_name(name),
            "modified_at": rfc3339(os.path.getmtime(self.manifest_path(name))),
            "size": size,
            "digest": sha256_hex(raw),
            "details": {
                "parent_model": "",
                "format": cfg.get("model_format", "gguf"),
                "family": family,
                "families": [family],
                "parameter_size": cfg.get("model_type", "3.2B"),
                "quantization_level": cfg.get("file_type", "Q4_K_M"),
            },
        }

    def params(self, name):
        manifest, _ = self.read_manifest(name)
        if manifest is None:
            return {}
        text = self.layer_text(manifest, MT_PARAMS)
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {}

    def install(self, name, model_digest=None, model_size=None, *, params=None, system=None,
                template=None, family=None):
        """Write blobs and a manifest for `name` (used by pull, create and the models knob)."""
        _host, _ns, model, tag = parse_name(name)
        billions = fake_params(model, tag)
        if model_digest is None:
            placeholder = b"OLLAMA-DOUBLE placeholder weights for " + name.encode()
            model_digest = self.write_blob(placeholder)
            model_size = int(billions * 0.63e9) + int(sha256_hex(name.encode())[:5], 16)
        family = family or (re.match(r"[a-z]+", model.lower()) or re.match(r".*", "llama")).group()
        layers = [{"mediaType": MT_MODEL, "digest": model_digest, "size": model_size}]
        tmpl = template or "{{ .Prompt }}"
        layers.append({"mediaType": MT_TEMPLATE, "digest": self.write_blob(tmpl.encode()),
                       "size": len(tmpl)})
        lic = "placeholder license text of the Ollama test double"
        layers.append({"mediaType": MT_LICENSE, "digest": self.write_blob(lic.encode()),
                       "size": len(lic)})
        if params:
            blob = dumps(params).encode()
            layers.append({"mediaType": MT_PARAMS, "digest": self.write_blob(blob),
                           "size": len(blob)})
        if system:
            layers.append({"mediaType": MT_SYSTEM, "digest": self.write_blob(system.encode()),
                           "size": len(system)})
        cfg = dumps({
            "model_format": "gguf", "model_family": family, "model_families": [family],
            "model_type": "%gB" % billions, "file_type": "Q4_K_M",
            "architecture": "amd64", "os": "linux",
        }).encode()
        config = {"mediaType": "application/vnd.docker.container.image.v1+json",
                  "digest": self.write_blob(cfg), "size": len(cfg)}
        with self.lock:
            self.write_manifest(name, config, layers)
        return layers


# ----------------------------------------------------------------------------------------------
# the deterministic "model"


def content_text(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def tool_names(tools):
    names = []
    for t in tools or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.append((fn["name"], fn.get("parameters") or {}))
    return names


def tool_arguments(schema, text):
    props = schema.get("properties") or {}
    wanted = schema.get("required") or list(props)
    args = {}
    for key in wanted:
        kind = (props.get(key) or {}).get("type", "string")
        if kind == "string":
            args[key] = text
        elif kind in ("integer", "number"):
            args[key] = len(text)
        elif kind == "boolean":
            args[key] = True
        elif kind == "array":
            args[key] = [text] if text else []
        else:
            args[key] = {}
    return args


def respond(messages, tools, knobs):
    """-> (text, tool_calls) for a conversation; tool_calls as [(name, args_dict)]."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        name = last.get("tool_name") or last.get("name") or "tool"
        return "Tool %s returned: %s" % (name, content_text(last.get("content"))), []
    user = ""
    for m in reversed(messages):
        if m.get("role") == "user":
            user = content_text(m.get("content"))
            break
    for name, schema in tool_names(tools):
        found = re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(name), user)
        if found:
            rest = user[found.end():].strip(" :,.\n\t")
            return "", [(name, tool_arguments(schema, rest))]
    return knobs["reply_template"].replace("{last}", user), []


def call_id(name, index):
    """The id of the index-th tool call of a reply (OpenAI ``tool_calls[].id``, Anthropic
    ``tool_use.id``): deterministic here, random in Ollama."""
    return "call_" + sha256_hex(("%s%d" % (name, index)).encode())[:8]


def split_tokens(text):
    return re.findall(r"\s*\S+|\s+$", text) if text else []


def plan(body, messages, tools, knobs, num_predict, stop):  # noqa: PLR0917
    """Shared generation: tokens to emit, tool calls, done_reason, counts, num_ctx facts."""
    options = body.get("options") or {}
    num_ctx = int(options.get("num_ctx") or knobs["context_length"])
    prompt_chars = sum(len(content_text(m.get("content"))) for m in messages)
    prompt_chars += len(dumps(tools)) if tools else 0
    prompt_tokens = estimate_tokens("x" * prompt_chars) + 3 * len(messages)
    truncated = prompt_tokens > num_ctx
    if truncated:
        sys.stderr.write('level=WARN source=runner.go msg="truncating input prompt" limit=%d '
                         'prompt=%d keep=4 new=%d\n' % (num_ctx, prompt_tokens, num_ctx))
    text, calls = respond(messages, tools, knobs)
    if calls and knobs["tool_calls_as_text"]:  # a model whose template does not parse its calls
        text = "\n".join(dumps({"name": n, "arguments": a}) for n, a in calls)
        calls = []
    for s in stop or []:
        if s and s in text:
            text = text[: text.index(s)]
    toks = split_tokens(text)
    reason = "stop"
    if num_predict is not None and 0 <= num_predict < len(toks):
        toks, reason = toks[:num_predict], "length"
    return {
        "tokens": toks,
        "calls": calls,
        "done_reason": reason,
        "prompt_eval_count": min(prompt_tokens, num_ctx),
        "eval_count": len(toks) + (10 * len(calls)),
        "num_ctx": num_ctx,
        "truncated": truncated,
        "prompt_tokens": prompt_tokens,
        "options": options,
    }


def metrics(p, started):
    total = int((time.time() - started) * 1e9) + 1000
    return {
        "total_duration": total,
        "load_duration": 1000,
        "prompt_eval_count": p["prompt_eval_count"],
        "prompt_eval_duration": total // 4,
        "eval_count": p["eval_count"],
        "eval_duration": total // 2,
    }


# ----------------------------------------------------------------------------------------------
# releases: routes that appeared in a later Ollama answer 404 when the double plays an older one

ROUTE_SINCE = {"/v1/messages": (0, 14, 0)}  # Anthropic compatibility came with Ollama 0.14.0


def version_tuple(text):
    """'0.40.2' -> (0, 40, 2); a suffix such as '-rc1' is dropped, missing parts count as 0."""
    parts = []
    for piece in str(text).split("-", 1)[0].split(".")[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


# ----------------------------------------------------------------------------------------------
# Anthropic compatibility: Ollama turns POST /v1/messages into a /api/chat request
# (anthropic.FromMessagesRequest) and its answer back (ToMessagesResponse, StreamConverter).


def anthropic_error(status, message, request_id):
    return {"type": "error",
            "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"), "message": message},
            "request_id": request_id}


def anthropic_blocks(content):
    """A message's content as blocks: a string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        return content
    raise HTTPError(400, "json: cannot unmarshal content into Go struct field "
                         "MessageParam.messages.content of type []anthropic.ContentBlock",
                    ANTHROPIC)


def tool_result_text(content):
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content
                       if isinstance(b, dict) and b.get("type") == "text")
    return content if isinstance(content, str) else ""


def from_anthropic(body):
    """-> (messages, tools, options) of the /api/chat request Ollama makes of a Messages request.

    The system prompt (a string, or text blocks joined) leads; a user turn's ``tool_result``
    blocks become ``tool`` messages before its text; an assistant turn's ``tool_use`` blocks
    become its ``tool_calls``; ``max_tokens`` is ``num_predict`` and ``stop_sequences`` is
    ``stop``. Images must be base64; thinking blocks and ``cache_control`` play no part here."""
    messages = []
    system = body.get("system")
    if isinstance(system, list):
        system = "".join(b.get("text", "") for b in system
                         if isinstance(b, dict) and b.get("type") == "text")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    tool_of = {}  # tool_use id -> tool name, so the tool message names the tool
    for msg in body["messages"]:
        if not isinstance(msg, dict):
            raise HTTPError(400, "messages must be a list of objects", ANTHROPIC)
        role = str(msg.get("role") or "").lower()
        text, calls, results = [], [], []
        for block in anthropic_blocks(msg.get("content")):
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text") or "")
            elif kind == "image":
                source = block.get("source") or {}
                if source.get("type") != "base64":
                    raise HTTPError(400, "invalid image source type: %s. Only base64 images "
                                         "are supported." % source.get("type"), ANTHROPIC)
            elif kind == "tool_use":
                for field in ("id", "name"):
                    if not block.get(field):
                        raise HTTPError(400, "tool_use block missing required '%s' field"
                                        % field, ANTHROPIC)
                tool_of[block["id"]] = block["name"]
                calls.append({"function": {"name": block["name"],
                                           "arguments": block.get("input") or {}}})
            elif kind == "tool_result":
                results.append({"role": "tool", "content": tool_result_text(block.get("content")),
                                "tool_call_id": block.get("tool_use_id"),
                                "tool_name": tool_of.get(block.get("tool_use_id"), "tool")})
        main = []
        if text or calls:
            main = [{"role": role, "content": "".join(text)}]
            if calls:
                main[0]["tool_calls"] = calls
        messages.extend(results + main if role == "user" else main + results)
    tools = [{"type": "function",
              "function": {"name": t.get("name"), "description": t.get("description", ""),
                           "parameters": t.get("input_schema") or {}}}
             for t in body.get("tools") or [] if isinstance(t, dict)]
    options = {"num_predict": body["max_tokens"]}
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            options[key] = body[key]
    if body.get("stop_sequences"):
        options["stop"] = list(body["stop_sequences"])
    return messages, tools, options


def anthropic_stop_reason(p):
    if p["calls"]:
        return "tool_use"
    return "max_tokens" if p["done_reason"] == "length" else "end_turn"


# ----------------------------------------------------------------------------------------------
# server


class State:
    def __init__(self, models_root, knobs):
        self.store = Store(models_root)
        self.knobs = dict(DEFAULT_KNOBS)
        self.lock = threading.Lock()
        self.loaded = {}  # name -> {"expires": ts, "num_ctx": n}
        self.stats = {}
        self.generations = 0
        self.last_request = None
        self.completion_ids = 0
        self.ids = 0
        self.configure(knobs)

    def next_id(self, prefix):
        """``msg_``/``req_`` + 24 hex digits, as Ollama's ids look (a counter here, not random)."""
        with self.lock:
            self.ids += 1
            return "%s%024x" % (prefix, self.ids)

    def has_route(self, path):
        """Whether the release the double plays (the ``version`` knob) has the route."""
        since = ROUTE_SINCE.get(path)
        return since is None or version_tuple(self.knobs["version"]) >= since

    def configure(self, update):
        update = dict(update or {})
        models = update.pop("models", None)
        with self.lock:
            for key, value in update.items():
                if key not in DEFAULT_KNOBS:
                    raise ValueError("unknown knob %r" % key)
                self.knobs[key] = value
        for name in models or []:
            if not self.store.exists(name):
                self.store.install(name)

    def count(self, key):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1


# The API dialect a request arrived in: it decides the shape of an error body.
NATIVE, OPENAI, ANTHROPIC = "native", "openai", "anthropic"

# Anthropic's error types by HTTP status (Ollama's anthropic.NewError).
ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                    503: "overloaded_error", 529: "overloaded_error"}


class HTTPError(Exception):
    def __init__(self, status, message, dialect=NATIVE):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.dialect = dialect


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ollama-double/" + VERSION
    state = None  # set by make_server

    # -- plumbing ----------------------------------------------------------------------------
    def log_message(self, format, *args):
        pass

    def gin_log(self, status, started):
        took = (time.time() - started) * 1e6
        sys.stderr.write('[GIN] %s | %3d | %12.3fµs | %15s | %-7s "%s"\n' % (
            time.strftime("%Y/%m/%d - %H:%M:%S"), status, took, self.client_address[0],
            self.command, self.path))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self, dialect=NATIVE):
        raw = self.read_body()
        if not raw:
            raise HTTPError(400, "missing request body", dialect)
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise HTTPError(400, "invalid character in request body: %s" % e, dialect) from e
        if not isinstance(body, dict):
            raise HTTPError(400, "json: cannot unmarshal into Go value of type api.Request",
                            dialect)
        return body

    def send(self, status, body, ctype="application/json; charset=utf-8"):
        if isinstance(body, (dict, list)):
            body = dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def start_stream(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = 200

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def error(self, err):
        if err.dialect == OPENAI:
            kinds = {400: "invalid_request_error", 404: "not_found_error"}
            kind = kinds.get(err.status, "api_error")
            body = {"error": {"message": err.message, "type": kind, "param": None, "code": None}}
        elif err.dialect == ANTHROPIC:
            body = anthropic_error(err.status, err.message, self.state.next_id("req_"))
        else:
            body = {"error": err.message}
        self.send(err.status, body)

    # -- dispatch ----------------------------------------------------------------------------
    ROUTES = {  # noqa: RUF012 - a constant table
        "/": ("GET", "HEAD"),
        "/api/version": ("GET", "HEAD"),
        "/api/tags": ("GET", "HEAD"),
        "/api/ps": ("GET",),
        "/api/show": ("POST",),
        "/api/pull": ("POST",),
        "/api/create": ("POST",),
        "/api/delete": ("DELETE",),
        "/api/chat": ("POST",),
        "/api/generate": ("POST",),
        "/v1/chat/completions": ("POST",),
        "/v1/messages": ("POST",),
        "/v1/models": ("GET",),
        "/__double__/config": ("GET", "POST"),
        "/__double__/last_request": ("GET",),
        "/__double__/stats": ("GET",),
        "/__double__/reset": ("POST",),
    }

    def dispatch(self):
        started = time.time()
        self._status = 0
        path = self.path.split("?", 1)[0]
        route = path
        if path.startswith("/api/blobs/"):
            route = "/api/blobs/"
            allowed = ("HEAD", "POST")
        else:
            allowed = self.ROUTES.get(path)
        st = self.state
        if not st.has_route(path):
            allowed = None  # not in the release the double plays: gin's 404
        if not path.startswith("/__double__"):
            st.count("%s %s" % (self.command, route))
        try:
            if allowed is None:
                self.send(404, "404 page not found", "text/plain")
            elif self.command not in allowed:
                self.send(405, "405 method not allowed", "text/plain")
            else:
                name = "do" + route.replace("/", "_").replace("__double__", "double")
                getattr(self, name.rstrip("_"))()
        except HTTPError as e:
            self.error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if not path.startswith("/__double__"):
            self.gin_log(self._status or 200, started)

    do_GET = do_POST = do_HEAD = do_DELETE = dispatch

    # -- simple endpoints --------------------------------------------------------------------
    def do(self):
        self.send(200, "Ollama is running", "text/plain; charset=utf-8")

    def do_api_version(self):
        self.send(200, {"version": self.state.knobs["version"]})

    def do_api_tags(self):
        st = self.state.store
        self.send(200, {"models": [st.info(n) for n in st.names() if st.info(n)]})

    def do_api_ps(self):
        st = self.state
        out = []
        now = time.time()
        for name, info in sorted(st.loaded.items()):
            if info["expires"] < now:
                continue
            entry = st.store.info(name)
            if entry is None:
                continue
            vram = st.knobs["vram_bytes"]
            entry.pop("modified_at", None)
            entry["expires_at"] = rfc3339(info["expires"])
            entry["size_vram"] = entry["size"] if vram is None else min(int(vram), entry["size"])
            entry["context_length"] = info["num_ctx"]
            out.append(entry)
        self.send(200, {"models": out})

    def model_name(self, body, dialect=NATIVE):
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPError(400, "model is required", dialect)
        return name

    def require_model(self, name, dialect=NATIVE):
        if not self.state.store.exists(name):
            if dialect == OPENAI:
                raise HTTPError(404, 'model "%s" not found, try pulling it first' % name, OPENAI)
            # the Anthropic middleware wraps the native handler's message
            raise HTTPError(404, "model '%s' not found" % name, dialect)

    def do_api_show(self):
        body = self.json_body()
        name = self.model_name(body)
        self.require_model(name)
        st = self.state
        entry = st.store.info(name)
        manifest, _ = st.store.read_manifest(name)
        params = st.store.params(name)
        fam = entry["details"]["family"]
        self.send(200, {
            "license": st.store.layer_text(manifest, MT_LICENSE),
            "modelfile": "# Modelfile generated by \"ollama show\"\nFROM %s\n" % display_name(name),
            "parameters": "\n".join("%-30s %s" % (k, v) for k, v in sorted(params.items())),
            "template": st.store.layer_text(manifest, MT_TEMPLATE),
            "system": st.store.layer_text(manifest, MT_SYSTEM),
            "details": entry["details"],
            "model_info": {
                "general.architecture": fam,
                "general.file_type": 15,
                "general.parameter_count": int(
                    float(entry["details"]["parameter_size"][:-1]) * 1e9),
                "%s.context_length" % fam: int(st.knobs["model_context_length"]),
            },
            "capabilities": ["completion", "tools"],
            "modified_at": entry["modified_at"],
        })

    def do_api_delete(self):
        name = self.model_name(self.json_body())
        if not self.state.store.delete(name):
            raise HTTPError(404, "model '%s' not found" % name)
        self.state.loaded.pop(display_name(name), None)
        self.send(200, b"", "text/plain")

    def do_api_blobs(self):
        digest = self.path.split("?", 1)[0][len("/api/blobs/"):]
        if not re.match(r"^sha256[:-][0-9a-f]{64}$", digest):
            raise HTTPError(400, "invalid digest format")
        digest = digest.replace("-", ":", 1)
        path = self.state.store.blob_path(digest)
        if self.command == "HEAD":
            self.send(200 if os.path.exists(path) else 404, b"", "text/plain")
            return
        data = self.read_body()
        got = "sha256:" + sha256_hex(data)
        if got != digest:
            raise HTTPError(400, 'digest mismatch, expected "%s", got "%s"' % (digest, got))
        self.state.store.write_blob(data)
        self.send(201, b"", "text/plain")

    # -- double control ----------------------------------------------------------------------
    def do_double_config(self):
        if self.command == "POST":
            try:
                self.state.configure(self.json_body())
            except ValueError as e:
                raise HTTPError(400, str(e)) from e
        self.send(200, self.state.knobs)

    def do_double_last_request(self):
        self.send(200, self.state.last_request or {})

    def do_double_stats(self):
        st = self.state
        self.send(200, {"requests": st.stats, "generations": st.generations})

    def do_double_reset(self):
        st = self.state
        with st.lock:
            st.stats, st.generations, st.last_request = {}, 0, None
        self.send(200, {"status": "reset"})

    # -- pull / create -----------------------------------------------------------------------
    def do_api_pull(self):
        body = self.json_body()
        name = self.model_name(body)
        stream = body.get("stream", True) is not False
        st = self.state
        knobs = st.knobs
        lines = []

        def emit(obj):
            if stream:
                self.chunk(dumps(obj).encode() + b"\n")
            lines.append(obj)
            if knobs["pull_step_delay"]:
                time.sleep(float(knobs["pull_step_delay"]))

        if stream:
            self.start_stream("application/x-ndjson")
        failure = self.pull_steps(name, emit)
        if stream:
            if failure:
                emit({"error": failure})
            self.end_stream()
        elif failure:
            self.send(500, {"error": failure})
        else:
            self.send(200, lines[-1])

    def pull_steps(self, name, emit):
        """Emit pull progress; return an error message or None."""
        st = self.state
        knobs = st.knobs
        st.count("pull " + display_name(name))
        emit({"status": "pulling manifest"})
        host, ns, model, tag = parse_name(name)
        only = knobs.get("pull_fail_only")
        fail = knobs["pull_fail"]
        if only is not None and display_name(name) not in [display_name(n) for n in only]:
            fail = ""
        if fail == "dns":
            return ('pull model manifest: Get "https://%s/v2/%s/%s/manifests/%s": dial tcp: '
                    "lookup %s: no such host" % (host, ns, model, tag, host))
        if fail == "stream":  # ollama/ollama issue #4981
            return ("pull model manifest: 200: stream error: stream ID 3; NO_ERROR; "
                    "received from peer")
        pullable = knobs["pullable"]
        if pullable is not None and display_name(name) not in [display_name(p) for p in pullable]:
            return "pull model manifest: file does not exist"
        billions = fake_params(model, tag)
        layers = [
            ("model", int(billions * 0.63e9) + int(sha256_hex(name.encode())[:5], 16)),
            ("template", 1429), ("license", 7711), ("params", 96),
        ]
        for kind, size in layers:
            digest = "sha256:" + sha256_hex(("%s/%s" % (display_name(name), kind)).encode())
            status = "pulling %s" % digest[7:19]
            if st.store.exists(name):
                emit({"status": status, "digest": digest, "total": size, "completed": size})
                continue
            emit({"status": status, "digest": digest, "total": size})
            for step in (1, 2, 3, 4):
                done = size * step // 4
                if kind == "model" and step == 4 and fail == "no_space":
                    return ("write %s/blobs/sha256-%s-partial: no space left on device"
                            % (st.store.root, digest[7:]))
                if kind == "model" and step == 2 and fail == "network":
                    return "max retries exceeded: EOF"
                emit({"status": status, "digest": digest, "total": size, "completed": done})
        emit({"status": "verifying sha256 digest"})
        emit({"status": "writing manifest"})
        if not st.store.exists(name):
            st.store.install(name)
        emit({"status": "success"})
        return None

    def do_api_create(self):
        body = self.json_body()
        name = self.model_name(body)
        stream = body.get("stream", True) is not False
        st = self.state
        params = dict(body.get("parameters") or {})
        system = body.get("system")
        template = body.get("template")
        base = body.get("from")
        files = body.get("files") or {}
        if isinstance(body.get("modelfile"), str):  # the old API: a Modelfile in the body
            mf = parse_modelfile(body["modelfile"])
            base = base or mf["from"]
            params.update(mf["parameters"])
            system = system or mf["system"]
            template = template or mf["template"]
        lines = []

        def emit(obj):
            if stream:
                self.chunk(dumps(obj).encode() + b"\n")
            lines.append(obj)

        def fail(msg, status=400):
            if stream:
                emit({"error": msg})
                self.end_stream()
            else:
                self.send(status, {"error": msg})

        if stream:
            self.start_stream("application/x-ndjson")
        emit({"status": "gathering model components"})
        model_digest, model_size, family = None, None, None
        if files:
            for fname, digest in sorted(files.items()):
                path = st.store.blob_path(digest)
                if not os.path.exists(path):
                    fail("blob %s for %s not found: upload it first" % (digest, fname))
                    return
                emit({"status": "using existing layer %s" % digest})
                model_digest, model_size = digest, os.path.getsize(path)
            emit({"status": "parsing GGUF"})
        elif base:
            if not st.store.exists(base):
                fail("model '%s' not found" % base, 404)
                return
            manifest, _ = st.store.read_manifest(base)
            model_layer = next(x for x in manifest["layers"] if x["mediaType"] == MT_MODEL)
            model_digest, model_size = model_layer["digest"], model_layer["size"]
            family = st.store.info(base)["details"]["family"]
            merged = st.store.params(base)
            merged.update(params)
            params = merged
            emit({"status": "using existing layer %s" % model_digest})
        else:
            fail("neither 'from' nor 'files' was specified")
            return
        layers = st.store.install(name, model_digest, model_size, params=params or None,
                                  system=system, template=template, family=family)
        for layer in layers[1:]:
            emit({"status": "creating new layer %s" % layer["digest"]})
        emit({"status": "writing manifest"})
        emit({"status": "success"})
        if stream:
            self.end_stream()
        else:
            self.send(200, lines[-1])

    # -- generation --------------------------------------------------------------------------
    def gate(self, dialect=NATIVE):
        """Apply the hang / fail knobs shared by every generation endpoint."""
        knobs = self.state.knobs
        deadline = time.time() + 600
        while knobs["hang"] and time.time() < deadline:
            time.sleep(0.05)
        if knobs["fail_status"]:
            raise HTTPError(int(knobs["fail_status"]), knobs["fail_message"], dialect)

    def record(self, path, body, p, model):
        st = self.state
        with st.lock:
            st.generations += 1
            st.last_request = {
                "path": path, "model": model, "body": body, "options": p["options"],
                "num_ctx": p["num_ctx"], "prompt_tokens": p["prompt_tokens"],
                "truncated": p["truncated"],
            }
            st.loaded[display_name(model)] = {"expires": time.time() + 300, "num_ctx": p["num_ctx"]}

    def sleep_token(self, i):
        knobs = self.state.knobs
        delay = float(knobs["first_token_delay"]) if i == 0 else 0.0
        delay += float(knobs["token_delay"])
        if delay:
            time.sleep(delay)

    def do_api_chat(self):
        body = self.json_body()
        name = self.model_name(body)
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise HTTPError(400, "messages must be a list of objects")
        self.require_model(name)
        self.gate()
        options = body.get("options") or {}
        p = plan(body, messages, body.get("tools"), self.state.knobs,
                 options.get("num_predict"), options.get("stop"))
        self.record("/api/chat", body, p, name)
        self.native_answer(name, p, body.get("stream", True) is not False, chat=True)

    def do_api_generate(self):
        body = self.json_body()
        name = self.model_name(body)
        self.require_model(name)
        prompt = body.get("prompt") or ""
        stream = body.get("stream", True) is not False
        if not prompt:
            reason = "unload" if body.get("keep_alive") in (0, "0", "0s") else "load"
            if reason == "unload":
                self.state.loaded.pop(display_name(name), None)
            else:
                self.state.loaded[display_name(name)] = {
                    "expires": time.time() + 300, "num_ctx": self.state.knobs["context_length"]}
            self.send(200, {"model": name, "created_at": now_utc(), "response": "",
                            "done": True, "done_reason": reason})
            return
        self.gate()
        options = body.get("options") or {}
        messages = [{"role": "user", "content": prompt}]
        if body.get("system"):
            messages.insert(0, {"role": "system", "content": body["system"]})
        p = plan(body, messages, None, self.state.knobs, options.get("num_predict"),
                 options.get("stop"))
        self.record("/api/generate", body, p, name)
        self.native_answer(name, p, stream, chat=False)

    def native_answer(self, name, p, stream, chat):
        started = time.time()
        knobs = self.state.knobs

        def piece(text, calls=None):
            obj = {"model": name, "created_at": now_utc()}
            if chat:
                msg = {"role": "assistant", "content": text}
                if calls:
                    msg["tool_calls"] = [
                        {"function": {"name": n, "arguments": a}} for n, a in calls]
                obj["message"] = msg
            else:
                obj["response"] = text
            return obj

        if not stream:
            final = piece("".join(p["tokens"]), p["calls"])
            final.update({"done_reason": p["done_reason"], "done": True})
            if not chat:  # /api/generate also returns the conversation's token ids
                final["context"] = list(range(1, p["prompt_eval_count"] + p["eval_count"] + 1))
            final.update(metrics(p, started))
            self.send(200, final)
            return
        self.start_stream("application/x-ndjson")
        for i, tok in enumerate(p["tokens"]):
            if i == knobs["fail_after_tokens"]:
                self.chunk(dumps({"error": knobs["fail_message"]}).encode() + b"\n")
                self.end_stream()
                return
            self.sleep_token(i)
            obj = piece(tok)
            obj["done"] = False
            self.chunk(dumps(obj).encode() + b"\n")
        if p["calls"]:
            obj = piece("", p["calls"])
            obj["done"] = False
            self.chunk(dumps(obj).encode() + b"\n")
        final = piece("")
        final.update({"done_reason": p["done_reason"], "done": True})
        if not chat:
            final["context"] = list(range(1, p["prompt_eval_count"] + p["eval_count"] + 1))
        final.update(metrics(p, started))
        self.chunk(dumps(final).encode() + b"\n")
        self.end_stream()

    # -- OpenAI compatibility ----------------------------------------------------------------
    def do_v1_models(self):
        st = self.state.store
        data = [{"id": n, "object": "model",
                 "created": int(os.path.getmtime(st.manifest_path(n))), "owned_by": "library"}
                for n in st.names()]
        self.send(200, {"object": "list", "data": data})

    def do_v1_chat_completions(self):
        body = self.json_body(OPENAI)
        name = self.model_name(body, OPENAI)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPError(400, "[] is too short - 'messages'", OPENAI)
        self.require_model(name, OPENAI)
        self.gate(OPENAI)
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        p = plan(body, messages, body.get("tools"), self.state.knobs, max_tokens, stop)
        self.record("/v1/chat/completions", body, p, name)
        st = self.state
        with st.lock:
            st.completion_ids += 1
            cid = "chatcmpl-%d" % st.completion_ids
        created = int(time.time())
        calls = [{"id": call_id(n, i), "index": i,
                  "type": "function", "function": {"name": n, "arguments": dumps(a)}}
                 for i, (n, a) in enumerate(p["calls"])]
        finish = "tool_calls" if calls else p["done_reason"]
        usage = {"prompt_tokens": p["prompt_eval_count"], "completion_tokens": p["eval_count"],
                 "total_tokens": p["prompt_eval_count"] + p["eval_count"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(p["tokens"])}
            if calls:
                message["tool_calls"] = calls
            self.send(200, {"id": cid, "object": "chat.completion", "created": created,
                            "model": name, "system_fingerprint": "fp_ollama",
                            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                            "usage": usage})
            return

        def chunk(delta, reason=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": name, "system_fingerprint": "fp_ollama",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
            self.chunk(b"data: " + dumps(obj).encode() + b"\n\n")

        self.start_stream("text/event-stream")
        for i, tok in enumerate(p["tokens"]):
            self.sleep_token(i)
            chunk({"role": "assistant", "content": tok})
        if calls:
            chunk({"role": "assistant", "content": "", "tool_calls": calls})
        chunk({"role": "assistant", "content": ""}, finish)
        opts = body.get("stream_options") or {}
        if opts.get("include_usage"):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                   "system_fingerprint": "fp_ollama", "choices": [], "usage": usage}
            self.chunk(b"data: " + dumps(obj).encode() + b"\n\n")
        self.chunk(b"data: [DONE]\n\n")
        self.end_stream()

    # -- Anthropic compatibility (Ollama >= 0.14.0) -------------------------------------------
    def do_v1_messages(self):
        """``POST /v1/messages`` (``?beta=true`` too): the reply of /api/chat, as Anthropic's
        Messages API shapes it. ``anthropic-version`` and the API key are accepted, not used."""
        body = self.json_body(ANTHROPIC)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HTTPError(400, "model is required", ANTHROPIC)
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise HTTPError(400, "max_tokens is required and must be positive", ANTHROPIC)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise HTTPError(400, "messages is required", ANTHROPIC)
        messages, tools, options = from_anthropic(body)
        self.require_model(model, ANTHROPIC)
        self.gate(ANTHROPIC)
        p = plan({"options": options}, messages, tools or None, self.state.knobs,
                 options["num_predict"], options.get("stop"))
        self.record("/v1/messages", body, p, model)
        mid = self.state.next_id("msg_")
        calls = [(call_id(n, i), n, a) for i, (n, a) in enumerate(p["calls"])]
        usage = {"input_tokens": p["prompt_eval_count"], "output_tokens": p["eval_count"]}
        reason = anthropic_stop_reason(p)
        if not body.get("stream"):
            content = [{"type": "text", "text": "".join(p["tokens"])}] if p["tokens"] else []
            content += [{"type": "tool_use", "id": c, "name": n, "input": a} for c, n, a in calls]
            self.send(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                            "content": content, "stop_reason": reason, "usage": usage})
            return
        self.anthropic_stream(mid, model, p, calls, usage, reason)

    def anthropic_stream(self, mid, model, p, calls, usage, reason):  # noqa: PLR0917
        """Anthropic's event sequence as Ollama's StreamConverter writes it: message_start, a
        text block (one delta per token), one block per tool call (its whole input in one
        input_json_delta), message_delta (stop_reason, usage), message_stop; no ping. A failure
        after N tokens (fail_after_tokens) ends the stream there: Ollama sends no error event."""

        def event(kind, data):
            self.chunk(("event: %s\ndata: %s\n\n" % (kind, dumps(data))).encode("utf-8"))

        self.start_stream("text/event-stream")
        event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0}}})
        index = 0
        for i, tok in enumerate(p["tokens"]):
            if i == self.state.knobs["fail_after_tokens"]:
                self.end_stream()
                return
            self.sleep_token(i)
            if i == 0:
                event("content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {"type": "text", "text": ""}})
            event("content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": tok}})
        if p["tokens"]:
            event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for cid, name, args in calls:
            event("content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "tool_use", "id": cid,
                                                            "name": name, "input": {}}})
            event("content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta",
                                                    "partial_json": dumps(args)}})
            event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason},
                                "usage": usage})
        event("message_stop", {"type": "message_stop"})
        self.end_stream()


def parse_modelfile(text):
    out = {"from": None, "parameters": {}, "system": None, "template": None, "license": None}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        cmd, _, arg = line.partition(" ")
        arg = arg.strip()
        if arg.startswith('"""'):
            arg = arg[3:]
            buf = []
            while '"""' not in arg and i <= len(lines):
                buf.append(arg)
                if i == len(lines):
                    arg = ""
                    break
                arg = lines[i]
                i += 1
            buf.append(arg.split('"""', 1)[0])
            arg = "\n".join(buf).strip("\n")
        elif len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1]
        cmd = cmd.upper()
        if cmd == "FROM":
            out["from"] = arg
        elif cmd == "PARAMETER":
            key, _, value = arg.partition(" ")
            value = value.strip().strip('"')
            with contextlib.suppress(ValueError):
                value = json.loads(value)
            if key == "stop":
                out["parameters"].setdefault("stop", []).append(str(value))
            else:
                out["parameters"][key] = value
        elif cmd in ("SYSTEM", "TEMPLATE", "LICENSE"):
            out[cmd.lower()] = arg
        elif cmd not in ("ADAPTER", "MESSAGE", "REQUIRES"):
            raise ValueError("unknown command %r in Modelfile" % cmd)
    if not out["from"]:
        raise ValueError("no FROM line")
    return out


def host_port():
    """OLLAMA_HOST as the real server reads it: default 127.0.0.1:11434; with a scheme and no
    port, http means 80 and https 443."""
    raw = os.environ.get("OLLAMA_HOST", "").strip()
    if not raw:
        return "127.0.0.1", 11434
    scheme = None
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
    raw = raw.split("/", 1)[0]
    host, port = raw, None
    if raw.startswith("["):
        host, _, tail = raw[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else None
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme or "", 11434)
    return host or "127.0.0.1", int(port)


def make_server(host, port, models_root, knobs=None):
    state = State(models_root, knobs)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def models_root():
    default = os.path.join(os.path.expanduser("~"), ".ollama", "models")
    return os.environ.get("OLLAMA_MODELS") or default


def serve():
    host, port = host_port()
    knobs = json.loads(os.environ.get("OLLAMA_DOUBLE_CONFIG") or "{}")
    preload = [n for n in os.environ.get("OLLAMA_DOUBLE_MODELS", "").split(",") if n.strip()]
    if preload:
        knobs["models"] = preload
    server = make_server(host, port, models_root(), knobs)
    sys.stderr.write('time=%s level=INFO source=routes.go msg="Listening on %s:%d (version %s)" '
                     "double=true\n" % (now_utc(), host, port, VERSION))
    sys.stderr.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    return 0


# ----------------------------------------------------------------------------------------------
# CLI client


class CLIError(Exception):
    pass


def base_url():
    host, port = host_port()
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return "http://%s:%d" % (host, port)


def call(method, path, body=None, *, stream=False, data=None, headers=None):
    url = base_url() + path
    payload = data if data is not None else (None if body is None else dumps(body).encode())
    req = urllib.request.Request(  # noqa: S310 - http://OLLAMA_HOST only
        url, data=payload, method=method, headers=headers or {})
    try:
        resp = urllib.request.urlopen(req, timeout=600)  # noqa: S310
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            msg = json.loads(raw.decode()).get("error")
        except ValueError:
            msg = raw.decode("utf-8", "replace").strip()
        raise CLIError(msg or "HTTP %d" % e.code) from e
    except (urllib.error.URLError, OSError) as e:
        raise CLIError("could not connect to ollama server, run 'ollama serve' to start it") from e
    if stream:
        return resp
    with resp:
        raw = resp.read()
    return json.loads(raw.decode()) if raw else {}


def stream_lines(resp):
    with resp:
        for raw in resp:
            line = raw.strip()
            if line:
                obj = json.loads(line.decode())
                if "error" in obj:
                    raise CLIError(obj["error"])
                yield obj


def cmd_pull(name):
    shown = {}
    for obj in stream_lines(call("POST", "/api/pull", {"model": name}, stream=True)):
        status = obj.get("status", "")
        digest = obj.get("digest")
        if digest:
            total, done = obj.get("total", 0), obj.get("completed", 0)
            if total and done >= total and not shown.get(digest):
                shown[digest] = True
                print("%s: 100%% ▕%s▏ %s" % (status, "█" * 18, human_size(total)))
        else:
            print(status)
    return 0


def cmd_list():
    models = call("GET", "/api/tags").get("models", [])
    rows = [("NAME", "ID", "SIZE", "MODIFIED")]
    for m in models:
        rows.append((m["name"], m["digest"][:12], human_size(m["size"]), m["modified_at"][:19]))
    print_table(rows)
    return 0


def cmd_ps():
    models = call("GET", "/api/ps").get("models", [])
    rows = [("NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL")]
    for m in models:
        size, vram = m["size"], m["size_vram"]
        if vram >= size:
            proc = "100% GPU"
        elif vram == 0:
            proc = "100% CPU"
        else:
            gpu = int(vram * 100 // size)
            proc = "%d%%/%d%% CPU/GPU" % (100 - gpu, gpu)
        rows.append((m["name"], m["digest"][:12], human_size(size), proc,
                     str(m.get("context_length", "")), m["expires_at"][:19]))
    print_table(rows)
    return 0


def print_table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("    ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_show(name):
    info = call("POST", "/api/show", {"model": name})
    d = info["details"]
    print("  Model")
    print("    architecture        %s" % info["model_info"]["general.architecture"])
    print("    parameters          %s" % d["parameter_size"])
    ctx = [v for k, v in info["model_info"].items() if k.endswith(".context_length")]
    print("    context length      %s" % (ctx[0] if ctx else ""))
    print("    quantization        %s" % d["quantization_level"])
    if info.get("parameters"):
        print("\n  Parameters")
        for line in info["parameters"].splitlines():
            print("    " + line)
    return 0


def cmd_rm(name):
    call("DELETE", "/api/delete", {"model": name})
    print("deleted '%s'" % name)
    return 0


def cmd_create(name, modelfile_path):
    try:
        with open(modelfile_path) as f:
            mf = parse_modelfile(f.read())
    except OSError as e:
        raise CLIError("open %s: %s" % (modelfile_path, e.strerror)) from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    body = {"model": name}
    src = mf["from"]
    path = os.path.join(os.path.dirname(os.path.abspath(modelfile_path)), os.path.expanduser(src))
    if os.path.isfile(path):
        print("gathering model components")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = "sha256:" + h.hexdigest()
        try:
            call("HEAD", "/api/blobs/" + digest)
        except CLIError:
            with open(path, "rb") as f:
                size = os.path.getsize(path)
                call("POST", "/api/blobs/" + digest, data=f,
                     headers={"Content-Length": str(size)})
            print("copying file %s 100%%" % digest)
        body["files"] = {os.path.basename(path): digest}
    else:
        body["from"] = src
    if mf["parameters"]:
        body["parameters"] = mf["parameters"]
    for key in ("system", "template", "license"):
        if mf[key]:
            body[key] = mf[key]
    for obj in stream_lines(call("POST", "/api/create", body, stream=True)):
        print(obj.get("status", ""))
    return 0


def cmd_version():
    try:
        version = call("GET", "/api/version").get("version", "")
    except CLIError:
        print("Warning: could not connect to a running Ollama instance")
        print("Warning: client version is %s" % VERSION)
        return 0
    print("ollama version is %s" % version)
    if version != VERSION:
        print("Warning: client version is %s" % VERSION)
    return 0


USAGE = """Usage:
  ollama [flags]
  ollama [command]

Available Commands:
  serve       Start ollama
  create      Create a model from a Modelfile
  show        Show information for a model
  pull        Pull a model from a registry
  list        List models
  ps          List running models
  rm          Remove a model

Flags:
  -h, --help      help for ollama
  -v, --version   Show version information

(This is the Ollama TEST DOUBLE from vastllm's test suite.)
"""


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = args[0], args[1:]
    try:
        if cmd in ("-v", "--version"):
            return cmd_version()
        if cmd == "serve":
            return serve()
        if cmd == "pull" and len(rest) == 1:
            return cmd_pull(rest[0])
        if cmd in ("list", "ls") and not rest:
            return cmd_list()
        if cmd == "ps" and not rest:
            return cmd_ps()
        if cmd == "show" and len(rest) == 1:
            return cmd_show(rest[0])
        if cmd == "rm" and rest:
            for name in rest:
                cmd_rm(name)
            return 0
        if cmd == "create" and len(rest) == 3 and rest[1] in ("-f", "--file"):
            return cmd_create(rest[0], rest[2])
        if cmd == "create" and len(rest) == 1:
            return cmd_create(rest[0], "Modelfile")
    except CLIError as e:
        sys.stderr.write("Error: %s\n" % e)
        return 1
    sys.stderr.write("Error: unknown command or arguments %r for \"ollama\"\n%s" % (args, USAGE))
    return 1


if __name__ == "__main__":
    sys.exit(main())
