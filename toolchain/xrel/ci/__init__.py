"""CI workflows that build, sign and publish a project's releases with xrel (`xrel ci github`)."""

from xrel.ci.github import DEFAULT_OUTPUT, Workflow, render, write

__all__ = ["DEFAULT_OUTPUT", "Workflow", "render", "write"]
