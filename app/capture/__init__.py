"""What is kept and how it is read: capture records, stores, views, export, redaction, broadcast, console log."""
