"""The gateway model, pure and I/O-free: Tyk's messages, what the gateway does with a reply, lint and diff."""
