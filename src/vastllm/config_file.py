"""Settings shared by the services: a JSON or YAML mapping named by an environment variable, read
as a pydantic-settings source below the environment itself; loading that never shows a value;
and the settings both services have about who may talk to them.

Settings hold secrets (API keys, a Redis password, upstream keys), and whatever a service prints
at startup lands in a world-readable service log and in Ansible's failure output. pydantic's
``str(ValidationError)`` quotes each offending input and YAML errors quote the offending line, so
:func:`load_settings` reports the field, its environment variable and the problem, never the
value, and raises with the original exception detached so no traceback can show it either.

``allowed_hosts`` and ``cors_origins`` are checked per request by each service's guard
(``proxy/guard.py``, ``model_api/guard.py``); their normal forms and :class:`HostAllowList` are
here so both services read them the same way.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsError

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_TOKEN_NAME = re.compile(r"<[a-z ]+>")
_ENV_FIELD = re.compile(r'field "([^"]+)"')


class ConfigFileError(ValueError):
    """A settings file cannot be read or parsed, or holds no mapping."""


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a JSON (``.json``) or YAML mapping; raise ConfigFileError naming the path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigFileError(f"cannot read config file {path}: {e.strerror}") from e
    data: object
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            # json's messages are fixed text plus a position, never a piece of the document
            raise ConfigFileError(f"cannot parse config file {path}: {e}") from None
    else:
        try:
            import yaml  # noqa: PLC0415 - optional dependency, only for YAML files
        except ImportError as e:
            raise ConfigFileError(
                f"config file {path} is YAML but PyYAML is not installed; use JSON or install it"
            ) from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigFileError(f"cannot parse config file {path}: {_yaml_problem(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


class ConfigFileSource(PydanticBaseSettingsSource):
    """Settings source reading the file named by the environment variable ``env_var``, if set."""

    def __init__(self, settings_cls: type[BaseSettings], env_var: str) -> None:
        super().__init__(settings_cls)
        raw = os.environ.get(env_var, "").strip()
        self._data = read_config_file(Path(raw)) if raw else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class FileBackedSettings(BaseSettings):
    """Settings read from keyword arguments, then ``<PREFIX>*`` environment variables, then the
    file named by the variable ``config_env`` (highest first); no dotenv, no secrets dir."""

    config_env: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, ConfigFileSource(settings_cls, cls.config_env))


def _elide(m: re.Match[str]) -> str:
    """A quoted piece of a YAML problem, kept when it is a character (``','``, ``'\\t'``) or a
    token name (``'<stream end>'``), else replaced: it may come from the document."""
    inner = m.group(0)[1:-1]
    return m.group(0) if len(inner) <= 2 or _TOKEN_NAME.fullmatch(inner) else "'...'"


def _yaml_problem(e: Exception) -> str:
    """What is wrong and where, without the snippet of the file YAML errors quote (the line may
    hold a key) nor quoted names (an undefined alias is quoted from the document)."""
    problem = getattr(e, "problem", None) or "YAML syntax error"
    problem = _QUOTED.sub(_elide, str(problem))
    mark = getattr(e, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


class InvalidSettings(Exception):
    """Settings cannot be loaded. The message names fields and problems only: safe to print."""


def split_list(value: object) -> object:
    """A list setting given as one string: JSON (``["a", "b"]``, or ``{...}``, which then fails
    as not a list) or comma-separated (``a, b``); anything else is left to validation."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith(("[", "{")):
            return json.loads(s)  # a JSONDecodeError names the position, not the text
        return [item.strip() for item in s.split(",") if item.strip()]
    return value


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc)


def describe_validation_error(e: ValidationError, env_prefix: str) -> str:
    """``field (ENV_VAR): message`` per problem, on one line when there is one. pydantic's
    messages describe what was expected; the input itself (``input_value=...`` in ``str(e)``)
    is left out."""
    lines = []
    for err in e.errors(include_url=False, include_input=False, include_context=False):
        loc, msg = err["loc"], err["msg"].removeprefix("Value error, ")
        if not loc:  # a check across fields: the message names them
            lines.append(msg)
            continue
        env = f"{env_prefix}{str(loc[0]).upper()}"
        lines.append(f"{_where(loc)} ({env}): {msg}")
    if len(lines) == 1:
        return f"invalid settings: {lines[0]}"
    return "invalid settings:\n" + "\n".join(f"  {line}" for line in lines)


def load_settings(cls: type[SettingsT], env_prefix: str) -> SettingsT:
    """``cls()`` from the environment and the config file; :class:`InvalidSettings` with a
    printable message when that fails. The cause is dropped (``from None``) on purpose."""
    try:
        return cls()
    except ValidationError as e:
        raise InvalidSettings(describe_validation_error(e, env_prefix)) from None
    except ConfigFileError as e:
        raise InvalidSettings(str(e)) from None
    except SettingsError as e:
        # pydantic-settings could not decode a complex value from the environment as JSON
        m = _ENV_FIELD.search(str(e))
        field = m.group(1) if m else "a setting"
        env = f"{env_prefix}{field.upper()}" if m else "the environment"
        raise InvalidSettings(f"invalid settings: {field} ({env}): not valid JSON") from None
    except Exception as e:  # its message could quote a value: name the type and place only
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else ""
        raise InvalidSettings(
            f"cannot load the settings: {type(e).__name__}{where} (message withheld: it may "
            "quote a setting's value)"
        ) from None


# -- who may talk to a service ----------------------------------------------------------------

# Host header names that always mean "this machine" (any port): what the SDKs, Claude Code and
# curl send through the SSH tunnel (http://127.0.0.1:PORT, http://localhost:PORT)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_bind(host: str) -> bool:
    """Whether listening on ``host`` keeps the port to this machine (127.0.0.0/8, ::1,
    localhost). Anything else, a wildcard or a name included, may be reachable from outside."""
    h = host.strip().lower().removeprefix("[").removesuffix("]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _split_port(entry: str) -> tuple[str, str]:
    """(host, port) of ``name``, ``name:port``, ``[v6]`` or ``[v6]:port`` (port may be '')."""
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0:
            raise ValueError("an IPv6 address in brackets lacks its ']'")
        rest = entry[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        return entry[: end + 1], rest[1:]
    if entry.count(":") > 1:  # a bare IPv6 address
        return f"[{entry}]", ""
    name, _, port = entry.partition(":")
    return name, port


def normalize_host(entry: str) -> str:
    """An ``allowed_hosts`` entry in the form Host headers are compared with: lower case, IPv6 in
    brackets, ``:port`` kept when given (then only that port matches). ``*`` allows any Host."""
    e = entry.strip().lower()
    if e == "*":
        return e
    if not e or "/" in e or "@" in e or any(c.isspace() for c in e):
        raise ValueError("give a host name or address, optionally with :port (not a URL)")
    name, port = _split_port(e)
    if not name or name == "[]":
        raise ValueError("the host name is empty")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("the port must be a number from 1 to 65535")
    return f"{name}:{port}" if port else name


def normalize_origin(entry: str) -> str:
    """A ``cors_origins`` entry as browsers send Origin: ``scheme://host[:port]``, lower case, no
    default port, no path."""
    e = entry.strip().lower().rstrip("/")
    parts = urlsplit(e)
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ValueError("give an origin such as https://chat.example.com (scheme://host[:port])")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("an origin is scheme://host[:port], without path, query or user")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class HostAllowList:
    """The Host header values a service answers: the loopback names, the address it listens on
    (unless a wildcard), and ``allowed_hosts`` (normal forms, see :func:`normalize_host`). A name
    matches on any port; a ``name:port`` entry on that port only. A request without Host is
    let through: browsers, the only clients this defends against, always send one."""

    __slots__ = ("_any", "_exact", "_names", "_seen")
    SEEN_MAX = 64  # Host values remembered as allowed: clients send the same one every time

    def __init__(self, allowed: Iterable[str], bind_host: str) -> None:
        entries = {normalize_host(e) for e in allowed}
        self._any = "*" in entries
        names = set(LOOPBACK_HOSTS)
        exact: set[str] = set()
        bind = bind_host.strip().lower()
        if bind and bind not in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - compared, not bound
            names.add(normalize_host(bind))
        for e in entries - {"*"}:
            (exact if _split_port(e)[1] else names).add(e)
        self._names = frozenset(names)
        self._exact = frozenset(exact | names)
        self._seen: set[str] = set()

    def allows(self, host: str | None) -> bool:
        if not host or self._any or host in self._seen:
            return True
        h = host.lower()
        if h in self._exact:
            ok = True
        elif h.startswith("["):
            ok = h[: h.find("]") + 1] in self._names
        else:
            ok = h.partition(":")[0] in self._names
        if ok and len(self._seen) < self.SEEN_MAX:
            self._seen.add(host)
        return ok


# Setting types shared by the services' settings: a list that the environment may also give as
# "a, b" (see split_list), and the two lists of the request guard, kept in their normal forms.
StrList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
AllowedHosts = Annotated[StrList, AfterValidator(lambda v: [normalize_host(h) for h in v])]
CorsOrigins = Annotated[StrList, AfterValidator(lambda v: [normalize_origin(o) for o in v])]
