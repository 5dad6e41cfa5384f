"""The gate: may a node go from release `old` to `new` in place (hot), or must it restart (cold)?

`reasons(old, new)` lists one line per rule that refuses; empty means a hot upgrade is allowed. Content is
compared, never version strings alone: release_handler unpacks with keep_old_files, so new bytes under an
old version would never reach the node. Refused (the cold switch instead):

- another release name or target, or the same version (nothing to upgrade)
- no sasl in the new release (release_handler is part of sasl)
- ERTS changed (restart_new_emulator needs heart, which mix releases run without)
- Elixir or an OTP application changed (no appups for them; Elixir has none at all)
- a native file (NIF, port program, driver) of any application added, removed or changed (a loaded NIF
  library cannot be replaced in place; a port program keeps running its old binary)
- releases/<vsn>/consolidated changed (protocols are consolidated outside every application: no appup
  covers them, and the running node keeps its old consolidated dir on the code path)
- vm.args or env.sh changed (read once, when the VM boots)
- the kernel, stdlib or sasl sections of sys.config changed (read at boot; install_release applies every
  other application's env from the new sys.config and calls config_change/3)

Allowed and handled by the package: applications added or removed, any other application with new code
(under a new version, or under the same version with new bytes: the package gives it a distinct version),
other sys.config sections, runtime.exs (the node agent evaluates it again after the install).
"""

from __future__ import annotations

from collections.abc import Callable

from xrel.upgrade.facts import PLATFORM_APPS, Release

BOOT_APPS = ("kernel", "stdlib", "sasl")  # their sys.config sections are read at boot only
BOOT_FILES = ("vm.args", "env.sh")


def same_release(old: Release, new: Release) -> list[str]:
    found = []
    if old.name != new.name:
        found.append(f"the running release is {old.name}, not {new.name}")
    if old.target != new.target:
        found.append(f"the running release is for {old.target or 'an unknown target'}, not {new.target}")
    return found


def new_version(old: Release, new: Release) -> list[str]:
    return [f"both releases are version {new.version}: nothing to upgrade"] if old.version == new.version else []


def has_sasl(old: Release, new: Release) -> list[str]:
    return [] if "sasl" in new.apps and "sasl" in old.apps else \
        ["sasl (release_handler) is not in both releases: add :sasl to extra_applications in mix.exs"]


def same_erts(old: Release, new: Release) -> list[str]:
    if old.erts_version != new.erts_version:
        return [f"ERTS changed ({old.erts_version} -> {new.erts_version}): a new emulator needs a restart"]
    if old.erts_hash != new.erts_hash:
        return [f"ERTS {new.erts_version} has other bytes than the running one (a rebuilt runtime): "
                "a new emulator needs a restart"]
    return []


def same_platform(old: Release, new: Release) -> list[str]:
    changed = sorted(app for app in PLATFORM_APPS & old.apps.keys() & new.apps.keys()
                     if old.apps[app] != new.apps[app] or old.app_hashes[app] != new.app_hashes[app])
    if not changed:
        return []
    shown = ", ".join(f"{a} {old.apps[a]}" + (f" -> {new.apps[a]}" if old.apps[a] != new.apps[a] else " (new bytes)")
                      for a in changed)
    return [f"Elixir/OTP applications changed ({shown}): they have no appups, restart"]


def same_natives(old: Release, new: Release) -> list[str]:
    changed = sorted(p for p in old.natives.keys() | new.natives.keys() if old.natives.get(p) != new.natives.get(p))
    if not changed:
        return []
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return [f"native code changed ({', '.join(changed[:3])}{more}): a loaded NIF or running port program "
            "cannot be replaced in place"]


def same_protocols(old: Release, new: Release) -> list[str]:
    if old.release_file_hash("consolidated") == new.release_file_hash("consolidated"):
        return []
    return ["consolidated protocols changed (releases/<vsn>/consolidated, outside every appup): restart"]


def same_boot_files(old: Release, new: Release) -> list[str]:
    changed = [f for f in BOOT_FILES if old.release_file_hash(f) != new.release_file_hash(f)]
    return [f"{', '.join(changed)} changed: read only when the VM boots"] if changed else []


def same_boot_config(old: Release, new: Release) -> list[str]:
    a, b = config_sections(old.release_text("sys.config") or ""), config_sections(new.release_text("sys.config") or "")
    changed = [app for app in BOOT_APPS if a.get(app) != b.get(app)]
    return [f"sys.config changed for {', '.join(changed)}: read only when the VM boots"] if changed else []


RULES: tuple[Callable[[Release, Release], list[str]], ...] = (
    same_release, new_version, has_sasl, same_erts, same_platform, same_natives, same_protocols, same_boot_files,
    same_boot_config)


def reasons(old: Release, new: Release, rules=None) -> list[str]:
    """Why `old` -> `new` cannot be hot (one line each); [] when it can."""
    return [reason for rule in (RULES if rules is None else rules) for reason in rule(old, new)]


def config_sections(text: str) -> dict[str, str]:
    """app -> the text of its `{app, [...]}` entry in a sys.config (whitespace dropped), from the top-level list."""
    sections, depth, start, i = {}, 0, None, 0
    while i < len(text):
        c = text[i]
        if c == "%":
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        if c in "\"'":
            i = _string_end(text, i)
            continue
        if c == "$":
            i += 3 if text[i + 1:i + 2] == "\\" else 2
            continue
        if c in "[{":
            depth += 1
            if depth == 2 and c == "{":
                start = i
        elif c in "]}":
            if depth == 2 and c == "}" and start is not None:
                raw = text[start:i + 1]
                sections[raw[1:].split(",", 1)[0].strip().strip("'")] = "".join(raw.split())
                start = None
            depth -= 1
        i += 1
    return sections


def _string_end(text: str, i: int) -> int:
    """The index after the string or quoted atom that starts at `i`."""
    quote, i = text[i], i + 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1
