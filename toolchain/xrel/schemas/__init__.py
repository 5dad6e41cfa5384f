"""The schema of each recipe file in recipes/, a module per file (xrel.recipes reads them)."""
