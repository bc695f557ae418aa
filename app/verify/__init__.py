"""Verify a plugin server build against recorded traffic, in the gateway's terms."""
