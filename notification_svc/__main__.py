"""``python -m notification_svc`` starts the notification service."""

from notification_svc.main import main

main()
