"""Generated from proto/orders/v1."""
