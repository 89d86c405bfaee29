"""Built-in trmkit task plugin: arc."""
