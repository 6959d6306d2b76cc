"""Persistence: SQLAlchemy Core tables, the engine, migrations and repositories.

Domain packages call the repository functions here with a `Connection` that is part of
their unit of work; they never build SQL of their own.
"""
