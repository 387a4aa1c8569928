"""Generated from proto/messaging/v1."""
