"""Tyk Inspector: a Tyk Gateway gRPC plugin server that shows every hook call live."""
