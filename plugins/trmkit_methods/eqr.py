"""The eqr method (docs/methods.md)."""
