"""Built-in trmkit task plugin: maze."""
