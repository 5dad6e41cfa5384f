"""Errors a user can cause or fix, each mapped to one exit code by the CLI."""

from __future__ import annotations


class XrelError(Exception):
    """Base of every expected failure: a one-line message that names the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(XrelError):
    """Bad arguments: an unknown target, a malformed version, a missing project."""

    exit_code = 2


class MissingToolError(XrelError):
    """A program xrel needs (zig, mix, apt, qemu) is not installed or too old."""

    exit_code = 3


class NotAvailableError(XrelError):
    """A source does not offer what was asked (version, architecture) or is offline."""

    exit_code = 4


class DownloadError(XrelError):
    """A download failed after retries."""

    exit_code = 5


class VerificationError(XrelError):
    """A checksum or signature did not match, or an archive is hostile."""

    exit_code = 6


class BuildError(XrelError):
    """A build step (mix, make, cargo, zig) failed."""

    exit_code = 7


class InspectionError(XrelError):
    """A native file does not match its target."""

    exit_code = 8

    def __init__(self, message: str, hint: str | None = None, problems: list | None = None):
        super().__init__(message, hint)
        self.problems = problems or []


class EmulationError(XrelError):
    """A release cannot be booted here, or failed its smoke test."""

    exit_code = 9
