"""Small helpers shared by the built-in grid task plugins (sudoku, maze, arc).

Only numpy and the public trmkit API are used here, so a third-party plugin may copy the
pattern: `dihedral` (the 8 symmetries of a square with the reference's ids), `codec` (the
"value + 1" token codec with PAD 0) and `csvsource` (the source,question,answer,rating CSV
layout of the Hugging Face Sudoku-Extreme and Maze-Hard datasets, plus the hub download).
"""
