"""Request journeys: the hooks and events of one API request grouped together, and tokens shared across credentials."""
