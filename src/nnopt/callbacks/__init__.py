"""Cross-cutting callbacks (each one file, one concern)."""
