"""The cache's tests: the proxy's cache on real processes (the proxy's own fixtures, from
tests/proxy/conftest.py), and for the redis role a test host container (tests/containers.py)
with the distribution's redis-server package installed, not started, as system_packages leaves
it, and venv support for the proxy's venv."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.containers import VENV_PACKAGES, Host, started_host
from tests.proxy.conftest import (  # noqa: F401 - the proxy's fixtures, for the cache's tests
    active_model_file,
    double,
    knobs,
    proxy,
    redis_server,
    unique,
    workdir,
)

# Debian 12's redis-server; the systemd image also gets logrotate (supervised_service installs
# it for the logs systemd appends to)
PACKAGES = ["redis-server"]
SYSTEMD_PACKAGES = ["logrotate"]


@pytest.fixture(scope="module", params=["vast-base-like", "systemd"])
def testhost(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    """Supervisord from a Vast.ai-like base image, or systemd as PID 1."""
    image = str(request.param)
    packages = PACKAGES + VENV_PACKAGES + (SYSTEMD_PACKAGES if image == "systemd" else [])
    tmp = tmp_path_factory.mktemp(f"redis-{image}")
    with started_host(image, tmp, packages) as host:
        yield host
