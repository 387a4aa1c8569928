"""Generated from proto/payments/v1."""
