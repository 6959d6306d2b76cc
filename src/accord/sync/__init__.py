"""Sync out: golden changes delivered to every target system (docs/sync.md)."""
