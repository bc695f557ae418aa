"""The gateway itself, read through its own API: version, API definitions, configured hooks."""
