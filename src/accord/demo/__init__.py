"""The demo company: its synthetic source data (`generator`) and its ready-made project."""
