"""Generated from proto/notifications/v1."""
