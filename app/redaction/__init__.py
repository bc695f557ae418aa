"""What is hidden: credentials in headers, query strings, bodies, sessions and metadata."""
