"""Optional SMTP delivery: each notification is e-mailed once through a real (local) SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from devstack.saga import saga_client
from devstack.stack import Stack, free_port, wait_for


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_each_order_outcome_is_emailed_once_to_the_customer(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    stack = Stack(tmp_path, env={"NOTIFICATION_SVC_SMTP_HOST": "127.0.0.1", "NOTIFICATION_SVC_SMTP_PORT": str(port)})
    try:
        await stack.start()
        async with saga_client(stack) as saga:
            paid, declined = await asyncio.gather(
                saga.create("pm_card_visa", customer_id="carol"), saga.create("pm_card_declined", customer_id="dave")
            )
            await saga.wait_notified([paid.order_id, declined.order_id])

            async def both_mailed() -> bool:
                return len(inbox.messages) >= 2

            await wait_for(both_mailed, timeout=30, what="two e-mails")
    finally:
        stack.stop()
    by_recipient = {m["To"]: m for m in inbox.messages}
    assert len(inbox.messages) == 2
    assert by_recipient["carol@example.com"]["Subject"] == "Your order is paid"
    assert paid.order_id in by_recipient["carol@example.com"].get_payload()
    assert by_recipient["dave@example.com"]["Subject"] == "Your order was cancelled"
