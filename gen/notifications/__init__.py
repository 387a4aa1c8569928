"""Generated from proto/notifications."""
