"""Building releases: the mix driver, per-target build trees, native deps, assembly, the release marker."""
