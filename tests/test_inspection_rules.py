"""inspection.check: every rule of check_binary against every target family, from BinaryInfo values.

The machine numbers are the formats' own (ELF e_machine, Mach-O cputype, PE machine), written out
here rather than read from targets.toml, so a wrong number there fails too.
"""

from __future__ import annotations

import json

import pytest

from xrel.inspection.binaries import BinaryInfo
from xrel.inspection.check import FileInfo, Finding, Report, check_binary
from xrel.targets import Target

EM_X86_64, EM_AARCH64, EM_ARM, EM_386 = 62, 183, 40, 3
CPU_X86_64, CPU_ARM64 = 0x01000007, 0x0100000C
PE_AMD64 = 0x8664


def elf(machine: int, bits: int, libc: str | None = "glibc", **extra) -> BinaryInfo:
    return BinaryInfo("lib/x/priv/x.so", "elf", "shared", machine=machine, bits=bits, endian="little",
                      os="linux", libc=libc, **extra)


def macho(machine: int, macos_min: str | None = "11.0") -> BinaryInfo:
    return BinaryInfo("lib/x/priv/x.so", "macho", "shared", machine=machine, bits=64, endian="little",
                      os="macos", macos_min=macos_min)


def pe(machine: int = PE_AMD64) -> BinaryInfo:
    return BinaryInfo("lib/x/priv/x.dll", "pe", "shared", machine=machine, bits=64, endian="little", os="windows")


FITS = [
    ("x86_64-linux-gnu", elf(EM_X86_64, 64, glibc_floor="2.17")),
    ("aarch64-linux-gnu", elf(EM_AARCH64, 64)),
    ("aarch64-linux-gnu.2.28", elf(EM_AARCH64, 64, glibc_floor="2.28")),
    ("arm-linux-gnueabihf", elf(EM_ARM, 32, float_abi="hard")),
    ("arm-linux-gnueabihf", elf(EM_ARM, 32, float_abi=None)),  # no float use recorded
    ("x86-linux-gnu", elf(EM_386, 32)),
    ("x86_64-linux-musl", elf(EM_X86_64, 64, libc="musl")),
    ("aarch64-linux-musl", elf(EM_AARCH64, 64, libc=None)),  # static: no libc to clash
    ("x86_64-linux-gnu", elf(EM_X86_64, 64, libc=None)),
    ("aarch64-macos", macho(CPU_ARM64)),
    ("x86_64-macos", macho(CPU_X86_64, "11.0.0")),  # trailing zeros do not count
    ("x86_64-windows", pe()),
]


@pytest.mark.parametrize(("target", "info"), FITS, ids=[f"{t}-{i.format}-{i.libc}" for t, i in FITS])
def test_a_file_built_for_the_target_fits(target, info):
    assert check_binary(info, Target.parse(target)) == []


# one row per rule and target family: the exact problems check_binary must report
MISFITS = [
    ("format-elf-on-macos", "x86_64-macos", elf(EM_X86_64, 64),
     ["is elf 64-bit x86-64, glibc, not macho for x86_64-macos"]),
    ("format-pe-on-linux", "x86_64-linux-gnu", pe(),
     ["is pe 64-bit AMD64 (PE), not elf for x86_64-linux-gnu"]),
    ("format-macho-on-windows", "x86_64-windows", macho(CPU_X86_64),
     ["is macho 64-bit x86_64 (Mach-O), not pe for x86_64-windows"]),
    ("machine-elf-aarch64-on-x86_64", "x86_64-linux-gnu", elf(EM_AARCH64, 64),
     ["is elf 64-bit AArch64, glibc, built for another CPU than x86_64-linux-gnu"]),
    ("machine-macho-x86_64-on-arm64", "aarch64-macos", macho(CPU_X86_64),
     ["is macho 64-bit x86_64 (Mach-O), built for another CPU than aarch64-macos"]),
    ("machine-pe-arm64-on-x86_64", "x86_64-windows", pe(0xAA64),
     ["is pe 64-bit ARM64 (PE), built for another CPU than x86_64-windows"]),
    ("bits-x32-on-x86_64", "x86_64-linux-gnu", elf(EM_X86_64, 32),
     ["is 32-bit, x86_64-linux-gnu is 64-bit"]),
    ("machine-and-bits-x86_64-on-i386", "x86-linux-gnu", elf(EM_X86_64, 64),
     ["is elf 64-bit x86-64, glibc, built for another CPU than x86-linux-gnu", "is 64-bit, x86-linux-gnu is 32-bit"]),
    ("float-soft-on-armhf", "arm-linux-gnueabihf", elf(EM_ARM, 32, float_abi="soft"),
     ["uses the soft-float ABI, arm-linux-gnueabihf is hard-float"]),
    ("libc-musl-on-glibc", "x86_64-linux-gnu", elf(EM_X86_64, 64, libc="musl"),
     ["links musl, x86_64-linux-gnu uses glibc"]),
    ("libc-glibc-on-musl", "aarch64-linux-musl", elf(EM_AARCH64, 64, glibc_floor="2.17"),
     ["links glibc, aarch64-linux-musl uses musl"]),
    ("glibc-floor-above-request", "aarch64-linux-gnu.2.28", elf(EM_AARCH64, 64, glibc_floor="2.34"),
     ["needs glibc 2.34, above the requested floor 2.28"]),
    ("glibc-floor-minor-versions-numeric", "x86_64-linux-gnu.2.9", elf(EM_X86_64, 64, glibc_floor="2.17"),
     ["needs glibc 2.17, above the requested floor 2.9"]),
    ("macos-min-above-target", "aarch64-macos", macho(CPU_ARM64, "14.0"),
     ["needs macOS 14.0, above the minimum 11.0"]),
    ("libc-and-glibc-floor-together", "x86_64-linux-musl", elf(EM_X86_64, 64, glibc_floor="2.38"),
     ["links glibc, x86_64-linux-musl uses musl"]),  # no floor requested on musl
]


@pytest.mark.parametrize(("target", "info", "expected"), [row[1:] for row in MISFITS], ids=[row[0] for row in MISFITS])
def test_each_rule_reports_its_misfit(target, info, expected):
    assert check_binary(info, Target.parse(target)) == expected


def test_static_archives_are_not_checked():
    archive = BinaryInfo("lib/x/priv/libx.a", "ar", "archive")
    assert check_binary(archive, Target.parse("aarch64-macos")) == []


def test_findings_print_as_the_json_dicts_they_always_were():
    info = FileInfo.of(elf(EM_ARM, 32, float_abi="soft", glibc_floor="2.4", needed=["libc.so.6"]))
    good = Finding("lib/x/priv/x.so", info, ["uses the soft-float ABI"], "application x")
    bad = Finding("lib/x/priv/broken.so", None, ["corrupt ELF"])
    report = Report("arm-linux-gnueabihf", "/rel", [good, bad])
    files = json.loads(json.dumps(report.to_dict()))["files"]
    assert files[0] == {"path": "lib/x/priv/x.so", "problems": ["uses the soft-float ABI"], "origin": "application x",
                        "info": {"format": "elf", "kind": "shared", "machine": 40, "bits": 32, "endian": "little",
                                 "os": "linux", "libc": "glibc", "float_abi": "soft", "interpreter": None,
                                 "glibc_floor": "2.4", "macos_min": None, "needed": ["libc.so.6"]}}
    assert files[1] == {"path": "lib/x/priv/broken.so", "info": {}, "problems": ["corrupt ELF"], "origin": ""}
    assert info.float_abi == "soft" and info.get("float_abi") == "soft" and {**info}["machine"] == EM_ARM
    assert "path" not in info and info.get("path") is None


def test_text_starting_with_mz_is_not_a_pe_file(tmp_path):
    """mix's random releases/COOKIE is base32 text: one build in a thousand starts with "MZ"."""
    from xrel.inspection.binaries import native_files, sniff

    cookie = tmp_path / "releases" / "COOKIE"
    cookie.parent.mkdir()
    cookie.write_text("MZQ3KXJ7W2OLTZ5GQWBDCQ4V6BAYN5DMIUTC4BA2WTOKBJCZ2E7A====")
    assert sniff(cookie) is None and native_files(tmp_path) == []
    pe = tmp_path / "x.dll"
    pe.write_bytes(b"MZ" + bytes(0x3A) + (0x40).to_bytes(4, "little") + b"PE\0\0" + bytes(64))
    assert sniff(pe) == "pe"
