"""Parse native files (ELF with pyelftools, Mach-O and PE with LIEF, both loaded when first needed)
into one record."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xrel.versions import release, version_key  # noqa: F401  (version_key: imported from here by others)

ELF_MAGIC = b"\x7fELF"
MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
FAT_MAGIC = b"\xca\xfe\xba\xbe"  # also Java class files: told apart by the arch count
AR_MAGIC = b"!<arch>\n"

EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400
_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+\.\d+(?:\.\d+)?)$")


@dataclass
class BinaryInfo:
    """What a native file is built for, and what it needs at run time."""

    path: str
    format: str  # elf | macho | pe | ar
    kind: str  # executable | shared | object | archive
    machine: int | None = None
    bits: int | None = None
    endian: str | None = None
    os: str | None = None  # linux | macos | windows
    libc: str | None = None  # glibc | musl | None (static, macOS, Windows, or no libc use)
    float_abi: str | None = None  # ARM only: hard | soft
    interpreter: str | None = None
    glibc_floor: str | None = None  # highest GLIBC_x.y symbol version needed
    macos_min: str | None = None
    needed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def sniff(path: Path) -> str | None:
    """The native format of a file from its first bytes, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head[:2] == b"MZ":  # a PE image names its "PE\0\0" header at 0x3c; text may start with MZ too
                f.seek(0x3C)
                offset = int.from_bytes(f.read(4), "little")
                f.seek(offset)
                return "pe" if f.read(4) == b"PE\0\0" else None
    except OSError:
        return None
    if head[:4] == ELF_MAGIC:
        return "elf"
    if head[:4] in MACHO_MAGICS:
        return "macho"
    if head[:4] == FAT_MAGIC and 0 < int.from_bytes(head[4:8], "big") < 20:
        return "macho"
    if head == AR_MAGIC:
        return "ar"
    return None


def read(path: Path) -> BinaryInfo:
    """Parse one native file; ValueError when it is not one or is corrupt."""
    path = Path(path)
    fmt = sniff(path)
    if fmt == "elf":
        return _read_elf(path)
    if fmt in ("macho", "pe"):
        return _read_lief(path, fmt)
    if fmt == "ar":
        return BinaryInfo(str(path), "ar", "archive")
    raise ValueError(f"{path} is not a native file")


def _read_elf(path: Path) -> BinaryInfo:
    # pyelftools loads in ~50 ms: only a build with a file the facts cache does not know parses one
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError as e:
            raise ValueError(f"{path}: corrupt ELF: {e}") from None
        header = elf.header
        kind = {"ET_EXEC": "executable", "ET_DYN": "shared", "ET_REL": "object"}.get(header["e_type"], "other")
        info = BinaryInfo(
            str(path), "elf", kind,
            machine=_elf_machine(header["e_machine"]),
            bits=elf.elfclass,
            endian="little" if elf.little_endian else "big",
            os="linux",
        )
        if header["e_machine"] == "EM_ARM":
            flags = header["e_flags"]
            info.float_abi = ("hard" if flags & EF_ARM_ABI_FLOAT_HARD
                              else "soft" if flags & EF_ARM_ABI_FLOAT_SOFT else None)
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                info.interpreter = segment.get_interp_name()
                if kind == "shared":
                    info.kind = "executable"  # a PIE executable
        floor: tuple[int, ...] = ()
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                info.needed = [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
            elif isinstance(section, GNUVerNeedSection):
                for _verneed, aux_iter in section.iter_versions():
                    for aux in aux_iter:
                        m = _GLIBC_VERSION.match(aux.name)
                        if m:
                            floor = max(floor, release(m.group(1)))
        info.glibc_floor = ".".join(map(str, floor)) if floor else None
        info.libc = _elf_libc(info)
        return info


def _elf_machine(name) -> int:
    from elftools.elf.enums import ENUM_E_MACHINE

    return name if isinstance(name, int) else ENUM_E_MACHINE.get(name, -1)


def _elf_libc(info: BinaryInfo) -> str | None:
    interp = info.interpreter or ""
    if "ld-musl" in interp or any(n.startswith("libc.musl") for n in info.needed):
        return "musl"
    if info.glibc_floor or "ld-linux" in interp or "libc.so.6" in info.needed:
        return "glibc"
    if "libc.so" in info.needed:
        return "musl"  # musl's libc soname is plain libc.so
    return None


def _read_lief(path: Path, fmt: str) -> BinaryInfo:
    import lief

    lief.logging.disable()
    parsed = lief.parse(str(path))
    if parsed is None:
        raise ValueError(f"{path}: not a readable {fmt} file")
    if fmt == "macho":
        binary = parsed.at(0) if isinstance(parsed, lief.MachO.FatBinary) else parsed
        file_type = binary.header.file_type
        kinds = {lief.MachO.Header.FILE_TYPE.EXECUTE: "executable", lief.MachO.Header.FILE_TYPE.DYLIB: "shared",
                 lief.MachO.Header.FILE_TYPE.BUNDLE: "shared", lief.MachO.Header.FILE_TYPE.OBJECT: "object"}
        minos = None
        if binary.has_build_version:
            minos = ".".join(str(x) for x in binary.build_version.minos)
        elif binary.has_version_min:
            minos = ".".join(str(x) for x in binary.version_min.version)
        needed = [c.name for c in binary.commands
                  if c.command in (lief.MachO.LoadCommand.TYPE.LOAD_DYLIB, lief.MachO.LoadCommand.TYPE.LOAD_WEAK_DYLIB,
                                   lief.MachO.LoadCommand.TYPE.REEXPORT_DYLIB)]
        return BinaryInfo(str(path), "macho", kinds.get(file_type, "other"), machine=int(binary.header.cpu_type.value),
                          bits=64 if binary.header.magic in (lief.MachO.MACHO_TYPES.MAGIC_64,
                                                             lief.MachO.MACHO_TYPES.CIGAM_64) else 32,
                          endian="little", os="macos", macos_min=minos, needed=needed)
    binary = parsed
    is_dll = bool(binary.header.characteristics & 0x2000)
    return BinaryInfo(str(path), "pe", "shared" if is_dll else "executable",
                      machine=int(binary.header.machine.value),
                      bits=64 if binary.optional_header.magic == lief.PE.PE_TYPE.PE32_PLUS else 32,
                      endian="little", os="windows", needed=[i.name for i in binary.imports])


_SKIP_SUFFIXES = (".beam", ".ex", ".exs", ".erl", ".hrl", ".app", ".txt", ".md", ".html", ".js", ".css",
                  ".json", ".map", ".boot", ".script", ".rel", ".config", ".png", ".svg", ".ez", ".h", ".c")


def native_files(root: Path) -> list[Path]:
    """Every native (ELF, Mach-O, PE, ar) file under `root`, symlinks not followed."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(_SKIP_SUFFIXES):
                continue
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            if sniff(p):
                found.append(p)
    return sorted(found)
