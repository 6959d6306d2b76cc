"""Stewardship: the review queue, and the decisions that stick (C3.4)."""
