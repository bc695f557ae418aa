"""Answering calls: routing rules, mocks, upstream plugin servers, replay and `send`."""
