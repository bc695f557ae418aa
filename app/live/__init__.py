"""Live views: the broadcaster that batches captures to every browser and the console log, wired to the store."""
