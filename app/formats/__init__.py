"""Captures as documents: the one JSON form, export and import, HAR, copy-as text, and the worker processes."""
