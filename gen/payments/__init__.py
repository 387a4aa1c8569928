"""Generated from proto/payments."""
