"""Generated from proto/messaging."""
