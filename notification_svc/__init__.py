"""notification_svc: records and sends exactly one notification per order outcome."""
