"""The NotificationService servicer (internal): request → use case → response."""

from __future__ import annotations

from typing import Any

import grpc
from notifications.v1 import notifications_pb2, notifications_pb2_grpc

from notification_svc.convert import notification_to_pb
from notification_svc.usecases import NotificationUseCases

__all__ = ["NotificationApi"]

Context = grpc.aio.ServicerContext[Any, Any]


class NotificationApi(notifications_pb2_grpc.NotificationServiceServicer):
    """notifications.v1.NotificationService over the notification use cases."""

    def __init__(self, usecases: NotificationUseCases) -> None:
        self._usecases = usecases

    async def ListNotifications(
        self, request: notifications_pb2.ListNotificationsRequest, context: Context
    ) -> notifications_pb2.ListNotificationsResponse:
        notifications, token = await self._usecases.list(
            request.order_id, request.customer_id, request.page_size, request.page_token
        )
        return notifications_pb2.ListNotificationsResponse(
            notifications=[notification_to_pb(n) for n in notifications], next_page_token=token
        )
