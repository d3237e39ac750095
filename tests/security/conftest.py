from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs remember their last endpoint under XDG_CACHE_HOME: keep that out of ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def plain_api_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests here that want CURVE give the key; a server key a LocalCluster of this process put
    in the environment (ORION_SERVER_KEY) must not make other clients insist on it."""
    for name in ("ORION_SERVER_KEY", "ORION_SERVER_KEY_FILE", "ORION_CLIENT_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
