"""Persistence: the schema, the engine and the stores built on it."""
