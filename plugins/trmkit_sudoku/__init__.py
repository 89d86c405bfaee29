"""Built-in trmkit task plugin: sudoku."""
