"""Model folders: which one a run uses, downloading and opening it, tokenizers, the tiny model."""
