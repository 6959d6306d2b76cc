"""Records in: read a source, map it to the canonical model, validate, store or quarantine."""
