"""One module per network family; each exposes `SPECS: list[ComponentSpec]`."""
