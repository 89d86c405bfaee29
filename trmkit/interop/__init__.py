"""Interoperability with the official TRM/HRM code: checkpoints in and out (docs/interop.md)."""
