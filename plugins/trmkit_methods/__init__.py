"""TRM's successors as plugins of trmkit: each method is one module registered through the
public hooks exactly as a third party's would be (docs/methods.md)."""
