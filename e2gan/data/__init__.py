"""What the training pairs are and where they live: source images (``sources``), the distilled
folder's manifest format (``manifest``), the dataset over it (``dataset``), subset selection
(``selection``) and the folder layout per config (``layout``). Distillation, which writes the
folders, is ``distill`` (it sits above the teachers)."""
