"""The project's own files: xrel.toml (its pins) and what xrel records beside it."""
