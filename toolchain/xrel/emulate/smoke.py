"""`xrel smoke`: boot a release on its target CPU, load every module (every NIF), check crypto.

The program the release evaluates is smoke.exs beside this module; it prints one
`XREL-SMOKE<TAB>kind<TAB>...` line per fact, parsed here into a SmokeReport.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xrel.emulate.runner import plan
from xrel.inspection.check import inspect_tree
from xrel.release.marker import opened_release
from xrel.release.results import native_file
from xrel.targets import Target

SMOKE_PROGRAM = Path(__file__).with_name("smoke.exs")
PREFIX = "XREL-SMOKE"


@dataclass(frozen=True)
class ModuleFailure:
    """A module that did not load, with the loader's own words (an on_load/NIF error) when it logged any."""

    app: str
    module: str
    reason: str
    loader_error: str = ""


@dataclass(frozen=True)
class CryptoCheck:
    status: str  # ok | error
    sha256: str  # of "xrel", or the error
    library: str  # the OpenSSL crypto was built with


@dataclass(frozen=True)
class SystemInfo:
    architecture: str
    otp_release: str
    wordsize: int


@dataclass
class SmokeOutput:
    """What the smoke program printed."""

    apps: dict[str, int] = field(default_factory=dict)  # app -> modules
    failures: list[ModuleFailure] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)  # files of the release's lib/ mapped into the VM
    crypto: CryptoCheck | None = None
    system: SystemInfo | None = None

    @property
    def modules(self) -> int:
        return sum(self.apps.values())


@dataclass
class SmokeReport:
    target: str
    mode: str
    ok: bool
    apps: dict[str, int]
    modules: int
    failures: list[ModuleFailure]
    nifs_loaded: list[str]
    executables: list[str]
    crypto: CryptoCheck | None  # None: the release has no crypto app (or did not boot)
    system: SystemInfo | None  # None: the release did not boot
    notes: list[str]
    output_tail: list[str]

    def to_dict(self) -> dict:
        data = asdict(self)
        return {**data, "crypto": data["crypto"] or {}, "system": data["system"] or {}}


def parse_smoke_output(output: str) -> SmokeOutput:
    """The XREL-SMOKE lines of the program's output (everything else is ignored)."""
    parsed = SmokeOutput()
    for line in output.splitlines():
        if not line.startswith(PREFIX + "\t"):
            continue
        kind, *rest = line.split("\t")[1:]
        if kind == "app":
            parsed.apps[rest[0]] = int(rest[1])
        elif kind == "fail":
            module = rest[1]
            parsed.failures.append(ModuleFailure(rest[0], module, rest[2], loader_errors(output, module)))
        elif kind == "mapped":
            parsed.mapped.append(rest[0])
        elif kind == "crypto":
            parsed.crypto = CryptoCheck(*rest[:3])
        elif kind == "system":
            parsed.system = SystemInfo(rest[0], rest[1], int(rest[2]))
    return parsed


def loader_errors(output: str, module: str) -> str:
    """The loader's own words about a module whose on_load failed (the VM logs them, over
    several lines, until a blank line)."""
    bare = module.strip("'").replace("Elixir.", "")
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "on_load function for module" in line and bare in line:
            text = []
            for follow in lines[i + 1:]:
                if not follow.strip() or follow.startswith(PREFIX):
                    break
                text.append(follow.strip())
            return " ".join(text)[:600]
    return ""


def _problems(returncode: int, parsed: SmokeOutput) -> list[str]:
    problems = []
    if returncode != 0 or parsed.system is None:
        problems.append(f"the release did not boot (exit {returncode})")
    if parsed.failures:
        problems.append(f"{len(parsed.failures)} module(s) failed to load")
    if (parsed.crypto is None or parsed.crypto.status != "ok") and "crypto" in " ".join(parsed.apps):
        problems.append("crypto does not work")
    return problems


def smoke(release: str | Path, *, target: str | Target | None = None, sysroot_packages: Sequence[str] = (),
          timeout: float = 600) -> SmokeReport:
    """Boot the release (`eval`), load every module of every app (running each NIF's on_load),
    and report apps, modules, NIFs loaded, priv executables and whether crypto works."""
    with opened_release(release) as release_dir:
        p = plan(release_dir, Target.parse(target) if target else None, sysroot_packages)
        proc = subprocess.run(p.argv(["eval", SMOKE_PROGRAM.read_text()]), env=p.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        output = proc.stdout + proc.stderr
        parsed = parse_smoke_output(output)
        files = [native_file(f) for f in inspect_tree(release_dir, p.target).files if f.info]  # (readable ones)
        priv = [f for f in files if "/priv/" in f.path]
        shared = {f.path for f in priv if f.kind == "shared"}
        mapped = {str(Path(m).relative_to(release_dir)) for m in parsed.mapped}
        problems = _problems(proc.returncode, parsed)
        return SmokeReport(
            target=p.target.id, mode=p.mode, ok=not problems, apps=parsed.apps, modules=parsed.modules,
            failures=parsed.failures, nifs_loaded=sorted(mapped & shared),
            executables=[f.path for f in priv if f.kind == "executable"], crypto=parsed.crypto,
            system=parsed.system, notes=p.notes + problems, output_tail=output.splitlines()[-15:],
        )
