"""What the training pairs are and where they come from: concepts (``concepts``: the named edits
and which ones a config names), source images (``sources``), the distilled folder's format
(``manifest``, with ``cost`` and ``shards``), the dataset over it (``dataset``) and subset
selection (``selection``). Distillation, which writes the folders (``distill``, with the write
path in ``writes``), sits above the teachers it drives."""
