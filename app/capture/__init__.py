"""What a capture is: the record of one call (Object or Event), its summary fields and the facts read from it."""
