"""The batch every loader yields and every model consumes (a dict of tensors).

``inputs`` int32 [B, seq_len] tokens; ``labels`` int32 [B, seq_len], `IGNORE_LABEL_ID`
where a position is not scored (the store's ``ignore_label_id`` is mapped to it when a
batch is read); ``puzzle_identifiers`` int32 [B], the embedding row of each example.
Evaluation batches add ``puzzle_index`` int32 and ``example_index`` int64 (-1 on padding
rows of the last batch).
"""

IGNORE_LABEL_ID = -100
"""Label of positions that neither the loss nor any metric counts (torch's ignore_index)."""
