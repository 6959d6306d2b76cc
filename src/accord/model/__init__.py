"""Canonical entity types and the shared vocabulary every mapping translates into."""
