"""Golden records: one per real customer, rebuilt from its members, explained per field."""
