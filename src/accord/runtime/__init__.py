"""Running Accord continuously: the workers that take queued work."""
