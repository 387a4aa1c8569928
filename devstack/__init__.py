"""Developer tooling, never shipped in a service image: `make up`, test fixtures, Envoy config, dead letters."""
