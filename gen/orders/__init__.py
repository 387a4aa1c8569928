"""Generated from proto/orders."""
