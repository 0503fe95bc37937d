"""The step kinds a runbook can use, one module per kind (or family of kinds)."""
