"""Fixtures of the unit tier."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_login_of_the_developer(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``$ORDERS_TOKEN`` or ``orders login`` of the developer reaches a test: a config folder of its own."""
    config = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("ORDERS_TOKEN", raising=False)
    monkeypatch.delenv("OIDC_ISSUER", raising=False)
    return config
