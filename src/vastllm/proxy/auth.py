"""Optional API keys: ``x-api-key: KEY`` or ``Authorization: Bearer KEY``.

Keys come from settings (environment or config file) and are compared with
:func:`hmac.compare_digest` against every configured key, so timing reveals neither a key nor
which one matched. Keys are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from pydantic import SecretStr

from vastllm.proxy.errors import AuthenticationFailed


class ApiKeys:
    def __init__(self, keys: list[SecretStr]) -> None:
        self._keys = [k.get_secret_value().encode() for k in keys if k.get_secret_value()]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise :class:`AuthenticationFailed` unless the headers carry a valid key."""
        if not self._keys:
            return
        given = headers.get("x-api-key")
        if given is None:
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer":
                given = token.strip()
        if not given:
            raise AuthenticationFailed(
                "missing API key: send 'x-api-key: KEY' or 'Authorization: Bearer KEY'"
            )
        candidate = given.encode("utf-8", "surrogateescape")
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(candidate, key)
        if not ok:
            raise AuthenticationFailed("invalid API key")
