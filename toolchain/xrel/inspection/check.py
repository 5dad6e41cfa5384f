"""Check every native file in a tree (runtime, release, tarball) against a target."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from xrel.errors import InspectionError
from xrel.inspection import binaries, facts
from xrel.inspection.binaries import BinaryInfo, version_key
from xrel.targets import Target

MACHINE_NAMES = {62: "x86-64", 183: "AArch64", 40: "ARM", 3: "i386", 243: "RISC-V", 22: "s390",
                 21: "PowerPC64", 16777223: "x86_64 (Mach-O)", 16777228: "arm64 (Mach-O)",
                 34404: "AMD64 (PE)", 43620: "ARM64 (PE)", 332: "i386 (PE)"}


def describe(info: BinaryInfo) -> str:
    machine = MACHINE_NAMES.get(info.machine or -1, str(info.machine))
    extra = f", {info.libc}" if info.libc else ""
    extra += f", {info.float_abi}-float" if info.float_abi else ""
    return f"{info.format} {info.bits}-bit {machine}{extra}"


Rule = Callable[[BinaryInfo, Target], str | None]  # a problem, or None when the file fits


def check_format(info: BinaryInfo, target: Target) -> str | None:
    """ELF, Mach-O or PE as the target's OS loads; the other rules only mean something after this one."""
    if info.format != target.format:
        return f"is {describe(info)}, not {target.format} for {target.name}"
    return None


def check_machine(info: BinaryInfo, target: Target) -> str | None:
    """The CPU the file is built for."""
    if info.machine != target.machine:
        return f"is {describe(info)}, built for another CPU than {target.name}"
    return None


def check_bits(info: BinaryInfo, target: Target) -> str | None:
    """The pointer width."""
    if info.bits != target.bits:
        return f"is {info.bits}-bit, {target.name} is {target.bits}-bit"
    return None


def check_float_abi(info: BinaryInfo, target: Target) -> str | None:
    """ARM hard vs soft float (armhf and armel share EM_ARM)."""
    if target.float_abi and info.float_abi and info.float_abi != target.float_abi:
        return f"uses the {info.float_abi}-float ABI, {target.name} is {target.float_abi}-float"
    return None


def check_libc(info: BinaryInfo, target: Target) -> str | None:
    """glibc vs musl; files with no libc use fit either."""
    if target.libc and info.libc and info.libc != target.libc:
        return f"links {info.libc}, {target.name} uses {target.libc}"
    return None


def check_glibc_floor(info: BinaryInfo, target: Target) -> str | None:
    """No GLIBC_x.y symbol version above the floor the user asked for (aarch64-linux-gnu.2.28)."""
    if target.glibc and info.glibc_floor and version_key(info.glibc_floor) > version_key(target.glibc):
        return f"needs glibc {info.glibc_floor}, above the requested floor {target.glibc}"
    return None


def check_macos_min(info: BinaryInfo, target: Target) -> str | None:
    """No macOS minimum above the target's."""
    if target.macos_min and info.macos_min and version_key(info.macos_min) > version_key(target.macos_min):
        return f"needs macOS {info.macos_min}, above the minimum {target.macos_min}"
    return None


CHECKS: tuple[Rule, ...] = (
    check_format,
    check_machine,
    check_bits,
    check_float_abi,
    check_libc,
    check_glibc_floor,
    check_macos_min,
)


def check_binary(info: BinaryInfo, target: Target) -> list[str]:
    """Every way `info` does not fit `target` (empty when it fits); a wrong format ends the checks."""
    if info.format == "ar":
        return []  # static archives are build inputs; checked when linked
    problems = []
    for rule in CHECKS:
        problem = rule(info, target)
        if problem:
            problems.append(problem)
            if rule is check_format:
                break
    return problems


@dataclass(eq=False)
class FileInfo(BinaryInfo, Mapping):
    """A BinaryInfo that also reads as the dict `xrel inspect --json` prints for it (no path):
    `info.kind` and `info.get("kind")`, `{**info}` alike."""

    @classmethod
    def of(cls, info: BinaryInfo) -> FileInfo:
        return cls(**{f.name: getattr(info, f.name) for f in fields(BinaryInfo)})

    def __getitem__(self, key: str):
        if key not in _INFO_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_INFO_KEYS)

    def __len__(self) -> int:
        return len(_INFO_KEYS)


_INFO_KEYS = tuple(f.name for f in fields(BinaryInfo) if f.name != "path")


@dataclass
class Finding:
    path: str  # relative to the inspected root
    info: FileInfo | None  # None when the file could not be parsed
    problems: list[str]
    origin: str = ""  # where it came from (an app, a dep, the runtime)

    def to_dict(self) -> dict:
        return {"path": self.path, "info": dict(self.info or {}), "problems": self.problems, "origin": self.origin}


@dataclass
class Report:
    target: str
    root: str
    files: list[Finding] = field(default_factory=list)
    glibc_floor: str | None = None
    macos_min: str | None = None
    needed: list[str] = field(default_factory=list)  # libraries needed but not inside the tree

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.files if f.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"target": self.target, "root": self.root, "ok": self.ok, "glibc_floor": self.glibc_floor,
                "macos_min": self.macos_min, "needed": self.needed,
                "files": [f.to_dict() for f in self.files]}

    def raise_for_problems(self, what: str) -> None:
        if self.ok:
            return
        lines = [f"{f.path}{f' (from {f.origin})' if f.origin else ''}: {'; '.join(f.problems)}"
                 for f in self.problems]
        raise InspectionError(
            f"{what}: {len(lines)} native file(s) do not match {self.target}: " + " | ".join(lines),
            "rebuild them for the target (see `xrel inspect --json` for details)",
            problems=lines,
        )


def origin_of(rel: str) -> str:
    """A human name for where a file in a release or runtime comes from."""
    parts = Path(rel).parts
    if parts and parts[0].startswith("erts-"):
        return "the runtime (ERTS)"
    if len(parts) > 1 and parts[0] == "lib":
        return f"application {parts[1].rsplit('-', 1)[0]}"
    return ""


def inspect_tree(root: Path, target: Target | str) -> Report:
    """Parse and check every native file under `root`."""
    target = Target.parse(target)
    root = Path(root)
    report = Report(target.id, str(root))
    provided = set()
    floor: tuple[int, ...] = ()
    macos: tuple[int, ...] = ()
    needed: set[str] = set()
    for path in binaries.native_files(root):
        rel = str(path.relative_to(root))
        provided.add(path.name)
        try:
            info = facts.read(path)  # parsed once per content; every rule below runs
        except ValueError as e:
            report.files.append(Finding(rel, None, [str(e)], origin_of(rel)))
            continue
        if info.glibc_floor:
            floor = max(floor, version_key(info.glibc_floor))
        if info.macos_min:
            macos = max(macos, version_key(info.macos_min))
        needed.update(info.needed)
        report.files.append(Finding(rel, FileInfo.of(info), check_binary(info, target), origin_of(rel)))
    report.glibc_floor = ".".join(map(str, floor)) if floor else None
    report.macos_min = ".".join(map(str, macos)) if macos else None
    report.needed = sorted(n for n in needed if os.path.basename(n) not in provided)
    return report


def inspect(path: str | Path, target: str | Target | None = None) -> Report:
    """Check every native file of a release dir, runtime root or xrel tarball against `target`
    (default: the release's own, from its marker or its beam.smp)."""
    from xrel.release.marker import opened_release, release_target

    with opened_release(path) as release_dir:
        report = inspect_tree(release_dir, release_target(release_dir, target))
    report.root = str(path)
    return report
