"""Tests of the diagnostics engines."""
