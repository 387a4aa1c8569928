"""The runtime chassis every service ships: bus, outbox, gRPC server bootstrap, settings, stores, logging."""
