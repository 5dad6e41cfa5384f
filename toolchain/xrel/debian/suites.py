"""Which Debian suites serve a target (recipes/sources.toml [debian]): for runtimes and sysroots."""

from __future__ import annotations

from xrel import recipes
from xrel.debian import apt
from xrel.schemas.sources import DebianSuite
from xrel.targets import Target
from xrel.versions import version_key


def suites_for(target: Target, *, name: str | None = None, otp: int | None = None,
               glibc_floor: str | None = None) -> list[DebianSuite]:
    """The suites with packages for `target`, best first (none for a target that is not glibc Linux).

    Narrowed to the suite called `name` when there is one; else to those shipping OTP major `otp`
    (all of them when none does); else to those whose glibc meets `glibc_floor` (the newest when
    none does). Without any of these: all of them, oldest first.
    """
    if target.libc != "glibc" or not target.debian:
        return []
    suites = [s for s in recipes.sources().debian.suites if target.debian in s.arches]
    named = [s for s in suites if s.name == name]
    if named:
        return named
    if otp is not None:
        return [s for s in suites if s.otp == otp] or suites
    if glibc_floor:
        return [s for s in suites if version_key(s.glibc) >= version_key(glibc_floor)] or suites[-1:]
    return suites


def repo(suite: DebianSuite, target: Target) -> apt.AptRepo:
    """The apt repository of `suite` (with its companions) for the target's architecture."""
    return apt.AptRepo(suite.name, target.debian, suite.also)
