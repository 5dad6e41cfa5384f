"""Run a release on its target CPU here (qemu-user, or natively), and smoke-test it."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xrel import progress
from xrel.debian.sysroot import ensure_sysroot
from xrel.emulate import qemu
from xrel.errors import EmulationError
from xrel.inspection.binaries import version_key
from xrel.inspection.check import inspect_tree
from xrel.release.marker import ReleaseMarker, opened_release, release_command, release_target
from xrel.targets import Target, host_target


@dataclass
class Plan:
    """How to start a release here."""

    release_dir: Path
    command: Path  # bin/<name>
    target: Target
    mode: str  # native | qemu | namespace
    env: dict[str, str]
    sysroot: Path | None = None
    notes: list[str] = field(default_factory=list)
    overlay: str = ""  # namespace mode: the lowerdir list mounted over /usr/lib

    def argv(self, args: list[str]) -> list[str]:
        """The command line that starts bin/<name> ARGS in this plan's mode."""
        if self.mode != "namespace":
            return [str(self.command), *args]
        script = f'mount -t overlay xrel-sysroot -o lowerdir={self.overlay} /usr/lib && exec "$0" "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.command), *args]


def jit_flags(target: Target, otp_major: int) -> str:
    """The arm64 JIT dual-maps code memory, which crashes under qemu-user: single-map it.
    Added under emulation only, never into the release."""
    if target.arch != "aarch64":
        return ""
    return "+JMsingle true" if otp_major >= 26 else "+JPperf true"


def _host_glibc() -> tuple[int, ...]:
    lib, version = platform.libc_ver()
    return version_key(version) if lib == "glibc" else ()


def plan(release_dir: Path, target: Target | None = None, sysroot_packages: list[str] = (),
         offline: bool = False) -> Plan:
    target = target or release_target(release_dir)
    emu = qemu.emulation(target)
    if not emu.possible:
        raise EmulationError(f"cannot run a {target.name} release here: {emu.reason}",
                             "`xrel inspect` still checks it; run it on the target itself")
    command = release_command(release_dir)
    report = inspect_tree(release_dir, target)
    marker = ReleaseMarker.read(release_dir)
    meta = marker.runtime_meta if marker else {}
    env = dict(os.environ)
    host = host_target()
    same_cpu_family = target.name == host.name or (target.arch == "x86" and host.arch == "x86_64")
    if same_cpu_family:
        floor = version_key(report.glibc_floor or "0")
        if target.name == host.name and floor <= _host_glibc():
            return Plan(release_dir, command, target, "native", env, None, [])
        return _namespace_plan(release_dir, command, target, report, meta, sysroot_packages, offline, env)
    if not emu.binfmt:
        raise EmulationError(f"{target.name} releases need binfmt_misc for their start script, "
                             f"which has no entry for this CPU here", qemu.ENABLE_BINFMT)
    sysroot, notes = _sysroot(target, report, meta, sysroot_packages, offline)
    env["QEMU_LD_PREFIX"] = str(sysroot)
    flags = jit_flags(target, marker.otp_major if marker else 0)
    if flags:
        env["ELIXIR_ERL_OPTIONS"] = (env.get("ELIXIR_ERL_OPTIONS", "") + " " + flags).strip()
        notes.append(f"added {flags} for qemu-user (not in the release)")
    return Plan(release_dir, command, target, "qemu", env, sysroot, notes)


def _namespace_plan(release_dir, command, target, report, meta, sysroot_packages, offline, env) -> Plan:
    """The CPU runs the release natively, but this system lacks its loader or a new enough glibc:
    run it in a private mount namespace with the sysroot laid over /usr/lib (needs root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise EmulationError(f"a {target.name} release needing glibc {report.glibc_floor} runs here only in a "
                             "private mount namespace, which needs root and unshare(1)", "run xrel as root")
    sysroot, notes = _sysroot(target, report, meta, sysroot_packages, offline)
    layers = [str(sysroot / "lib"), str(sysroot / "usr" / "lib")]
    if any(c in "".join(layers) for c in ",:"):
        raise EmulationError(f"the sysroot path {sysroot} contains ',' or ':', which overlayfs cannot take",
                             "set XREL_CACHE_DIR to a plain path")
    if target.name == host_target().name:
        # a newer glibc than this system's: the target's libraries win (host tools run on it too)
        lower, note = [*layers, "/usr/lib"], "target libc laid over /usr/lib in a private mount namespace"
    else:
        # another ABI of this CPU (i386 on x86_64): only add what the system lacks
        lower, note = ["/usr/lib", *layers], "i386 loader and libraries added in a private mount namespace"
    lower = [d for d in lower if Path(d).is_dir() and not Path(d).is_symlink()]
    return Plan(release_dir, command, target, "namespace", env, sysroot, [note, *notes], overlay=":".join(lower))


def _sysroot(target, report, meta, sysroot_packages, offline) -> tuple[Path, list[str]]:
    unresolved: list[str] = []
    sysroot = ensure_sysroot(target, report.needed, meta, list(sysroot_packages), offline=offline,
                             unresolved=unresolved)
    notes = [f"warning: no Debian package provides {', '.join(unresolved)}; whatever needs it will not load "
             f"(add one with --sysroot-package)"] if unresolved else []
    return sysroot, notes


def run(release: str | Path, args: list[str], target: str | None = None,
        sysroot_packages: list[str] = (), **popen) -> int:
    """Run `bin/<name> ARGS` of the release on its target CPU; returns the exit code."""
    with opened_release(release) as release_dir:
        p = plan(release_dir, Target.parse(target) if target else None, sysroot_packages)
        for note in p.notes:
            progress.note(f"xrel: {note}")
        return subprocess.call(p.argv(args), env=p.env, **popen)


SMOKE_CODE = r'''
out = fn parts -> IO.puts(Enum.join(["XREL-SMOKE" | parts], "\t")) end
root = to_string(:code.root_dir())
for ebin <- Path.wildcard(Path.join(root, "lib/*/ebin")) do
  app = ebin |> Path.dirname() |> Path.basename()
  beams = Path.wildcard(Path.join(ebin, "*.beam"))
  failed =
    for beam <- beams, mod = beam |> Path.basename(".beam") |> String.to_atom(), reduce: [] do
      acc ->
        case :code.ensure_loaded(mod) do
          {:module, _} -> acc
          {:error, reason} -> [{mod, reason} | acc]
        end
    end
  out.(["app", app, Integer.to_string(length(beams)), Integer.to_string(length(failed))])
  for {mod, reason} <- failed, do: out.(["fail", app, inspect(mod), inspect(reason)])
end
maps = case File.read("/proc/self/maps") do
  {:ok, text} -> text
  _ -> ""
end
for line <- String.split(maps, "\n"), path = line |> String.split(" ", trim: true) |> Enum.at(5),
    is_binary(path) and String.starts_with?(path, root <> "/lib/"), uniq: true,
    do: out.(["mapped", path])
crypto =
  try do
    hash = :crypto.hash(:sha256, "xrel") |> Base.encode16(case: :lower)
    {_, _, version} = hd(:crypto.info_lib())
    ["ok", hash, to_string(version)]
  rescue
    e -> ["error", Exception.message(e), ""]
  catch
    kind, reason -> ["error", inspect({kind, reason}), ""]
  end
out.(["crypto" | crypto])
try do
  Logger.flush()
rescue
  _ -> :ok
end
out.(["system", to_string(:erlang.system_info(:system_architecture)), to_string(:erlang.system_info(:otp_release)),
      Integer.to_string(:erlang.system_info(:wordsize))])
'''


@dataclass
class SmokeReport:
    target: str
    mode: str
    ok: bool
    apps: dict[str, int]
    modules: int
    failures: list[dict]
    nifs_loaded: list[str]
    executables: list[str]
    crypto: dict
    system: dict
    notes: list[str]
    output_tail: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _parse_smoke(output: str) -> dict:
    data: dict = {"apps": {}, "modules": 0, "failures": [], "mapped": [], "crypto": {}, "system": {}}
    for line in output.splitlines():
        if not line.startswith("XREL-SMOKE\t"):
            continue
        kind, *rest = line.split("\t")[1:]
        if kind == "app":
            data["apps"][rest[0]] = int(rest[1])
            data["modules"] += int(rest[1])
        elif kind == "fail":
            data["failures"].append({"app": rest[0], "module": rest[1], "reason": rest[2]})
        elif kind == "mapped":
            data["mapped"].append(rest[0])
        elif kind == "crypto":
            data["crypto"] = {"status": rest[0], "sha256": rest[1], "library": rest[2]}
        elif kind == "system":
            data["system"] = {"architecture": rest[0], "otp_release": rest[1], "wordsize": int(rest[2])}
    return data


def _loader_errors(output: str, module: str) -> str:
    """The loader's own words about a module whose on_load failed (the VM logs them, over
    several lines, until a blank line)."""
    bare = module.strip("'").replace("Elixir.", "")
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "on_load function for module" in line and bare in line:
            text = []
            for follow in lines[i + 1:]:
                if not follow.strip() or follow.startswith("XREL-SMOKE"):
                    break
                text.append(follow.strip())
            return " ".join(text)[:600]
    return ""


def smoke(release: str | Path, target: str | None = None, sysroot_packages: list[str] = (),
          timeout: float = 600) -> SmokeReport:
    """Boot the release (`eval`), load every module of every app (running each NIF's on_load),
    and report apps, modules, NIFs loaded, priv executables and whether crypto works."""
    with opened_release(release) as release_dir:
        p = plan(release_dir, Target.parse(target) if target else None, sysroot_packages)
        proc = subprocess.run(p.argv(["eval", SMOKE_CODE]), env=p.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        output = proc.stdout + proc.stderr
        data = _parse_smoke(output)
        for failure in data["failures"]:
            failure["loader_error"] = _loader_errors(output, failure["module"])
        report = inspect_tree(release_dir, p.target)
        executables = [f.path for f in report.files if f.info.get("kind") == "executable" and "/priv/" in f.path]
        shared = [f.path for f in report.files if f.info.get("kind") == "shared" and "/priv/" in f.path]
        nifs = sorted({str(Path(m).relative_to(release_dir)) for m in data["mapped"] if
                       str(Path(m).relative_to(release_dir)) in shared}) if data["mapped"] else []
        problems = []
        if proc.returncode != 0 or not data["system"]:
            problems.append(f"the release did not boot (exit {proc.returncode})")
        if data["failures"]:
            problems.append(f"{len(data['failures'])} module(s) failed to load")
        if data["crypto"].get("status") != "ok" and "crypto" in " ".join(data["apps"]):
            problems.append("crypto does not work")
        return SmokeReport(
            target=p.target.id, mode=p.mode, ok=not problems, apps=data["apps"], modules=data["modules"],
            failures=data["failures"], nifs_loaded=nifs, executables=executables, crypto=data["crypto"],
            system=data["system"], notes=p.notes + problems, output_tail=output.splitlines()[-15:],
        )


def host_can_run(target: Target) -> bool:
    return target.name == host_target().name
