"""The run folder: ``results.json`` (its typed, versioned schema), checkpoints and ``model.keras``;
the one reader and writer of each."""
