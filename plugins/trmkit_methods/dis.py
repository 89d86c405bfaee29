"""The dis method (docs/methods.md)."""
