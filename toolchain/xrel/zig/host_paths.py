"""Which host directories the compiler wrapper rewrites, and to what, for one target (CcConfig.path_map)."""

from __future__ import annotations

from pathlib import Path

from xrel.host import host_erlang
from xrel.targets import Target, host_target
from xrel.zig.otp_headers import OtpHeaders

# Host directories whose headers and libraries are never right for another target. Only the
# include/lib parts of /usr/local: a project may well live in /usr/local/src.
HOST_ONLY_PREFIXES = ("/usr/local/include", "/usr/local/lib", "/usr/local/lib64", "/opt/homebrew", "/opt/local")

PathEntry = tuple[str, tuple[str, ...] | None]  # host dir, target dirs ((): drop, None: keep)
PathMap = tuple[PathEntry, ...]


def host_path_map(target: Target, otp: OtpHeaders | None, sysroot: Path | None) -> PathMap:
    """Host dir -> the target dirs it stands for ((): drop, None: keep), longest host dir first."""
    mapping = _host_erlang_map(target, otp) + _system_dirs_map(target, otp, sysroot)
    return tuple(sorted(mapping, key=lambda item: len(item[0]), reverse=True))


def _host_erlang_map(target: Target, otp: OtpHeaders | None) -> list[PathEntry]:
    """The host's own Erlang (what `erl` says Makefiles should include) -> the target root's."""
    try:
        host = host_erlang()
    except Exception:  # no host Erlang: nothing of it can leak in
        return []
    if otp is None:
        # host headers and no target ones known: refuse them, unless building for the host itself
        return [(str(host.root), None if target.name == host_target().name else ())]
    target_apps = {d.name.rsplit("-", 1)[0]: d for d in (otp.root / "lib").glob("*-*")}
    mapping = [(str(host.root / f"erts-{host.erts_version}"), (str(otp.erts_include.parent),))]
    mapping += [(str(directory), (str(target_apps[app]),)) for app, directory in host.app_dirs().items()
                if app in target_apps]
    mapping.append((str(host.root / "usr"), (str(otp.root / "usr"),)))
    mapping.append((str(host.root), (str(otp.root),)))
    return mapping


def _system_dirs_map(target: Target, otp: OtpHeaders | None, sysroot: Path | None) -> list[PathEntry]:
    """/usr/include, /usr/lib and the host's multiarch dirs -> the OTP root's and the sysroot's."""
    sys_inc = [str(sysroot / "usr/include")] if sysroot else []
    sys_lib: list[str] = []
    if sysroot and target.multiarch:
        sys_inc.append(str(sysroot / "usr/include" / target.multiarch))
        sys_lib = [str(sysroot / "usr/lib" / target.multiarch), str(sysroot / "usr/lib")]
    otp_inc = [str(otp.ei_include)] if otp else []
    otp_lib = [str(otp.ei_lib)] if otp else []
    mapping: list[PathEntry] = []
    host_multiarch = host_target().multiarch
    if host_multiarch:
        mapping.append((f"/usr/include/{host_multiarch}", tuple(sys_inc[1:])))
        mapping.append((f"/usr/lib/{host_multiarch}", tuple(sys_lib[:1])))
        mapping.append((f"/lib/{host_multiarch}", tuple(sys_lib[:1])))
    mapping.append(("/usr/include", tuple(otp_inc + sys_inc[:1])))
    mapping.append(("/usr/lib", tuple(otp_lib + sys_lib[1:])))
    return mapping


def sysroot_flags(target: Target, sysroot: Path | None) -> tuple[str, ...]:
    """Search paths into a Debian sysroot, after everything the build system passes."""
    if not sysroot:
        return ()
    extra = ["-idirafter", str(sysroot / "usr/include")]
    if target.multiarch:
        extra += ["-idirafter", str(sysroot / "usr/include" / target.multiarch)]
        # no -rpath-link: zig's linker ignores it, with a warning on every link (measured)
        extra += [f"-L{sysroot / d}" for d in (f"usr/lib/{target.multiarch}", f"lib/{target.multiarch}")]
    return tuple(extra)
