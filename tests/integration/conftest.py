"""Fixtures of the integration tier: a real stack (nats-server + three service processes) per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.saga import SagaClient, saga_client
from devstack.stack import Stack


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A stack shared by the tests of one module that do not break it."""
    running = Stack(Path(tmp_path_factory.mktemp("stack")), env={"ORDER_SVC_MAX_DELIVER": "3"})
    try:
        await running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def saga(stack: Stack) -> AsyncIterator[SagaClient]:
    async with saga_client(stack) as client:
        yield client
