"""Building releases: the mix driver, per-target build trees, native deps, assembly."""

from .build import BuildResult, TargetResult, build

__all__ = ["BuildResult", "TargetResult", "build"]
