"""SMTP delivery of notifications (optional, enabled by NOTIFICATION_SVC_SMTP_HOST)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from notification_svc.domain import Notification, NotificationKind

__all__ = ["SmtpMailer"]

_SUBJECTS = {
    NotificationKind.ORDER_PAID: "Your order is paid",
    NotificationKind.PAYMENT_FAILED: "Your order was cancelled",
}


class SmtpMailer:
    """Sends one e-mail per notification through an SMTP relay (blocking smtplib, run in a thread)."""

    def __init__(self, host: str, port: int, sender: str, recipient_domain: str, timeout: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipient_domain = recipient_domain
        self._timeout = timeout

    def recipient(self, customer_id: str) -> str:
        """The customer id if it is an address, else ``<customer_id>@<recipient domain>``."""
        return customer_id if "@" in customer_id else f"{customer_id}@{self._recipient_domain}"

    def _send(self, notification: Notification) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = self.recipient(notification.customer_id)
        message["Subject"] = _SUBJECTS[notification.kind]
        message["Message-ID"] = f"<{notification.notification_id}@order-saga>"
        message.set_content(notification.message)
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            smtp.send_message(message)

    async def send(self, notification: Notification) -> None:
        await asyncio.to_thread(self._send, notification)
