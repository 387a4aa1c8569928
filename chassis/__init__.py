"""The microservice chassis: bus, gRPC server bootstrap, settings, logging, test fixtures."""
