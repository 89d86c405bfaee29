"""The cgar method (docs/methods.md)."""
