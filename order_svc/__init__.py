"""order_svc: takes orders over gRPC and moves them to PAID or CANCELLED from payment events."""
