"""The urm method (docs/methods.md)."""
