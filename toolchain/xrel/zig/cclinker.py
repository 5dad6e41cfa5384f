"""-Wl,/-Xlinker options for zig's linkers (lld for ELF and COFF, its own for Mach-O): one rule,
linker_options, driven by tables of what each target's linker rejects. Standard library only.
"""

from __future__ import annotations

if __package__:  # imported as xrel.zig.cclinker
    from xrel.zig.ccconfig import CcConfig, Decision, next_arg
else:  # the wrapper runs ccfilter.py as a script: this directory is sys.path[0]
    from ccconfig import CcConfig, Decision, next_arg

# zig's lld rejects these on every target: --fix-cortex-a53-843419 (cargo-zigbuild 7e791b4; gcc
# passes it for aarch64) and --exclude-libs (measured: "unsupported linker arg")
_LLD_REJECTS = ("--fix-cortex-a53-843419", "--exclude-libs")
# options foreign to the target's linker:
# macos: ELF-only options; -dylib is rejected by zig's Mach-O linker (cargo-zigbuild 2fe352e),
#   -flat_namespace too (measured), and NIFs resolve enif_* with -undefined dynamic_lookup
# windows: ELF options, and mingw-ld options zig's COFF linker rejects (cargo-zigbuild 0d1e945;
#   --enable-auto-import measured)
# elf: Mach-O-only options from Makefiles written on a Mac
_FOREIGN_LINKER_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # os: (prefixes, exact names)
    "macos": (("--", "-z", "-soname", "-Bsymbolic", "-rpath-link", "-E"),
              ("-Bdynamic", "-Bstatic", "-dylib", "-flat_namespace")),
    "windows": (("-z", "-soname", "--version-script", "-rpath", "--as-needed", "--no-as-needed",
                 "--disable-auto-image-base", "-Bsymbolic", "--build-id", "--hash-style", "--no-undefined-version",
                 "--enable-auto-import", "--large-address-aware", "-E", "--export-dynamic"), ()),
    "elf": (("-undefined", "-dylib", "-install_name", "-exported_symbols_list", "-flat_namespace", "-headerpad",
             "-bundle_loader"), ()),
}
# -Wl, options that take the next comma item (or the next -Wl, argument) as their value
_LINKER_WITH_VALUE = ("-soname", "-z", "-rpath", "-undefined", "-install_name", "-exported_symbols_list",
                      "--version-script", "-rpath-link", "--exclude-libs")


def _linker_option_ok(option: str, os_name: str) -> bool:
    """Is one -Wl, sub-option meaningful for the target's linker?"""
    prefixes, exact = _FOREIGN_LINKER_OPTIONS.get(os_name, _FOREIGN_LINKER_OPTIONS["elf"])
    return not (option.startswith(_LLD_REJECTS + prefixes) or option in exact)


def _filter_linker_options(options: list[str], os_name: str) -> tuple[list[str], bool]:
    """The items the target's linker takes, and whether the next linker argument is the value of
    an option dropped last here (`-Wl,-soname -Wl,libx.so`)."""
    kept: list[str] = []
    skip_next = False
    for n, option in enumerate(options):
        if skip_next:
            skip_next = False
        elif _linker_option_ok(option, os_name):
            kept.append(option)
        elif option in _LINKER_WITH_VALUE:
            if n + 1 == len(options):
                return kept, True
            skip_next = True
    return kept, False


def linker_items(args: list[str], i: int) -> tuple[list[str], int] | None:
    """The options of a linker argument (`-Wl,a,b`, or `-Xlinker a` with no comma in a) and its span."""
    if i >= len(args):
        return None
    if args[i].startswith("-Wl,"):
        return args[i][4:].split(","), 1
    value = next_arg(args, i)
    if args[i] == "-Xlinker" and value is not None and "," not in value:
        return [value], 2
    return None


def _suppress_as_dynamic_lookup(options: list[str]) -> list[str]:
    """`-undefined suppress|warning` as zig's Mach-O linker spells it (it only knows error and dynamic_lookup)."""
    return ["dynamic_lookup" if o in ("suppress", "warning") and n and options[n - 1] == "-undefined" else o
            for n, o in enumerate(options)]


def linker_options(args: list[str], i: int, config: CcConfig) -> Decision | None:
    """-Wl,/-Xlinker options: drop those the target's linker rejects (see _FOREIGN_LINKER_OPTIONS),
    with their values, even when the value is the next -Wl,/-Xlinker argument; -Xlinker X becomes -Wl,X."""
    out: list[str] = []
    notes: list[str] = []
    n, pending_value = i, False
    while (item := linker_items(args, n)) is not None and (n == i or pending_value):
        original, span = item
        options = original[1:] if pending_value else original
        if config.os == "macos":
            options = _suppress_as_dynamic_lookup(options)
        kept, pending_value = _filter_linker_options(options, config.os)
        if kept != original:
            notes.append(f"rewrote linker options {' '.join(args[n:n + span])} -> {','.join(kept) or 'nothing'}")
        if kept:
            out.append("-Wl," + ",".join(kept))
        n += span
    if n == i:
        return None
    return Decision(tuple(out), n - i, "; ".join(notes) or None)
