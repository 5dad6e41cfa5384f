"""zig as the C/C++ toolchain for a target: wrapper scripts, CMake toolchain file, environment."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from xrel.host import host_erlang
from xrel.storage import cache
from xrel.targets import Target, host_target
from xrel.zig import ccfilter
from xrel.zig.locate import find_zig

# Host directories whose headers and libraries are never right for another target. Only the
# include/lib parts of /usr/local: a project may well live in /usr/local/src.
HOST_ONLY_PREFIXES = ("/usr/local/include", "/usr/local/lib", "/usr/local/lib64", "/opt/homebrew", "/opt/local")


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> bool:
    """Write `content` unless the file already has it (keeps make/cmake from rebuilding)."""
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def _find_one(base: Path, pattern: str) -> Path | None:
    found = sorted(base.glob(pattern))
    return found[-1] if found else None


@dataclass(frozen=True)
class OtpHeaders:
    """Where a target OTP root keeps what native builds include and link."""

    root: Path

    @property
    def erts_include(self) -> Path:
        erts = _find_one(self.root, "erts-*")
        return (erts or self.root / "erts-missing") / "include"

    @property
    def ei_dir(self) -> Path | None:
        return _find_one(self.root / "lib", "erl_interface-*")

    @property
    def ei_include(self) -> Path:
        return self.root / "usr" / "include"

    @property
    def erl_cflags(self) -> str:
        """port_compiler's ERL_CFLAGS: erl_interface's include dir, then ERTS's."""
        ei = self.ei_dir / "include" if self.ei_dir else self.ei_include
        return f'-I"{ei}" -I"{self.erts_include}"'

    @property
    def ei_lib(self) -> Path:
        return self.root / "usr" / "lib"


class ZigToolchain:
    """zig wrappers and environment for building native code for one target."""

    def __init__(self, target: Target | str, otp_root: Path | None = None, sysroot: Path | None = None):
        self.target = Target.parse(target)
        self.otp = OtpHeaders(Path(otp_root)) if otp_root else None
        self.sysroot = Path(sysroot) if sysroot else None
        self.zig = find_zig()

    # -- configuration handed to zigcc --------------------------------------------------------
    def _path_map(self) -> list[tuple[str, object]]:
        mapping: list[tuple[str, object]] = []
        host = None
        try:
            host = host_erlang()
        except Exception:  # no host Erlang: nothing of it can leak in
            pass
        if host is not None and self.otp is not None:
            target_apps = {d.name.rsplit("-", 1)[0]: d for d in (self.otp.root / "lib").glob("*-*")}
            mapping.append((str(host.root / f"erts-{host.erts_version}"), str(self.otp.erts_include.parent)))
            for app, directory in host.app_dirs().items():
                if app in target_apps:
                    mapping.append((str(directory), str(target_apps[app])))
            mapping.append((str(host.root / "usr"), str(self.otp.root / "usr")))
            mapping.append((str(host.root), str(self.otp.root)))
        elif host is not None and self.target.name != host_target().name:
            mapping.append((str(host.root), []))  # host headers, no target ones known: refuse
        elif host is not None:
            mapping.append((str(host.root), None))  # building for the host: its own Erlang is right
        sys_inc = [str(self.sysroot / "usr/include")] if self.sysroot else []
        sys_lib = []
        if self.sysroot and self.target.multiarch:
            sys_inc.append(str(self.sysroot / "usr/include" / self.target.multiarch))
            sys_lib = [str(self.sysroot / "usr/lib" / self.target.multiarch), str(self.sysroot / "usr/lib")]
        otp_inc = [str(self.otp.ei_include)] if self.otp else []
        otp_lib = [str(self.otp.ei_lib)] if self.otp else []
        host_multiarch = host_target().multiarch
        if host_multiarch:
            mapping.append((f"/usr/include/{host_multiarch}", sys_inc[1:]))
            mapping.append((f"/usr/lib/{host_multiarch}", sys_lib[:1]))
            mapping.append((f"/lib/{host_multiarch}", sys_lib[:1]))
        mapping.append(("/usr/include", otp_inc + sys_inc[:1]))
        mapping.append(("/usr/lib", otp_lib + sys_lib[1:]))
        mapping.sort(key=lambda item: len(item[0]), reverse=True)
        return mapping

    def _extra_flags(self) -> list[str]:
        extra = []
        if self.sysroot:
            extra += ["-idirafter", str(self.sysroot / "usr/include")]
            if self.target.multiarch:
                extra += ["-idirafter", str(self.sysroot / "usr/include" / self.target.multiarch)]
                # no -rpath-link: zig's linker ignores it, with a warning on every link (measured)
                for d in (f"usr/lib/{self.target.multiarch}", f"lib/{self.target.multiarch}"):
                    extra.append(f"-L{self.sysroot / d}")
        return extra

    def cc_config(self, mode: str) -> dict:
        return {
            "zig": str(self.zig.path),
            "target": self.target.zig_triple,
            "cpu": self.target.zig_cpu,
            "os": self.target.os,
            "arch": self.target.arch,
            "mode": mode,
            "path_map": self._path_map(),
            "drop_paths": list(HOST_ONLY_PREFIXES),
            "extra": self._extra_flags(),
        }

    # -- files ----------------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        """Wrappers live in a dir named by target and a hash of their configuration."""
        key = json.dumps([self.cc_config("cc"), sys.executable], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return cache.area("toolchains") / f"{self.target.id}-{digest}"

    def tool(self, name: str) -> Path:
        return self.directory / name

    def write(self) -> Path:
        """Create or refresh the wrappers; unchanged files are left untouched."""
        d = self.directory
        zig = shlex.quote(str(self.zig.path))
        python = shlex.quote(sys.executable)
        script = shlex.quote(str(Path(ccfilter.__file__).resolve()))
        for mode, names in (("cc", ("cc", "gcc", "clang")), ("c++", ("c++", "g++", "clang++"))):
            body = (
                "#!/bin/sh\n# xrel: zig as the C compiler for " + self.target.id + "\n"
                f"exec {python} -S -E {script} {shlex.quote(json.dumps(self.cc_config(mode)))} \"$@\"\n"
            )
            for name in names:
                write_if_changed(d / name, body, 0o755)
        simple = {"ar": "ar", "ranlib": "ranlib", "objcopy": "objcopy", "dlltool": "dlltool", "rc": "rc",
                  "windres": "rc"}
        for name, sub in simple.items():
            write_if_changed(d / name, f"#!/bin/sh\nexec {zig} {sub} \"$@\"\n", 0o755)
        if self.target.os == "macos":
            # Mach-O files are never modified after link: zig ad-hoc signs arm64 binaries.
            strip = "#!/bin/sh\n# Mach-O: stripping would break the code signature; left as linked\nexit 0\n"
        else:
            strip = (
                "#!/bin/sh\nfor f; do case \"$f\" in -*) ;; *) "
                f"{zig} objcopy --strip-all \"$f\" \"$f\" || exit $?;; esac; done\n"
            )
        write_if_changed(d / "strip", strip, 0o755)
        write_if_changed(d / "toolchain.cmake", self.cmake_toolchain())
        return d

    def cmake_toolchain(self) -> str:
        d = self.directory
        system, processor = self.target.cmake_system
        roots = [str(p) for p in (self.otp.root if self.otp else None, self.sysroot) if p]
        lines = [
            f"# xrel: CMake toolchain for {self.target.id} (zig {self.zig.version})",
            f"set(CMAKE_SYSTEM_NAME {system})",
            f"set(CMAKE_SYSTEM_PROCESSOR {processor})",
            f'set(CMAKE_C_COMPILER "{d / "cc"}")',
            f'set(CMAKE_CXX_COMPILER "{d / "c++"}")',
            f'set(CMAKE_AR "{d / "ar"}" CACHE FILEPATH "archiver")',
            f'set(CMAKE_RANLIB "{d / "ranlib"}" CACHE FILEPATH "ranlib")',
            f'set(CMAKE_STRIP "{d / "strip"}" CACHE FILEPATH "strip")',
            # CMake looks for llvm-ar next to a Clang for IPO builds and finds the host's (measured:
            # /usr/bin/llvm-ar, another LLVM than zig's): zig's own for C and C++
            *(f'set(CMAKE_{lang}_COMPILER_{tool.upper()} "{d / tool}" CACHE FILEPATH "{tool}")'
              for lang in ("C", "CXX") for tool in ("ar", "ranlib")),
            "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)",
            "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
            "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
            "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
            "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
        ]
        if roots:
            lines.append("set(CMAKE_FIND_ROOT_PATH " + " ".join(f'"{r}"' for r in roots) + ")")
        if self.target.os == "windows":
            lines.append(f'set(CMAKE_RC_COMPILER "{d / "rc"}")')
        return "\n".join(lines) + "\n"

    # -- environment ----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables for building native code for the target (never TARGET_ARCH & co.)."""
        d = self.write()
        triple = self.target.rust
        under = triple.replace("-", "_")
        env = {
            "CC": str(d / "cc"),
            "CXX": str(d / "c++"),
            "AR": str(d / "ar"),
            "RANLIB": str(d / "ranlib"),
            "STRIP": str(d / "strip"),
            f"CC_{under}": str(d / "cc"),
            f"CXX_{under}": str(d / "c++"),
            f"AR_{under}": str(d / "ar"),
            f"CARGO_TARGET_{under.upper()}_LINKER": str(d / "cc"),
            "CMAKE_TOOLCHAIN_FILE": str(d / "toolchain.cmake"),
            "XREL_TARGET": self.target.id,
        }
        env.update(self.rebar_env())
        if self.otp is not None:
            env["ERTS_INCLUDE_DIR"] = str(self.otp.erts_include)
            # elixir_make's names (erlang.mk's env.mk reads the ERL_INTERFACE_* ones with ?=)
            env["ERL_EI_INCLUDE_DIR"] = env["ERL_INTERFACE_INCLUDE_DIR"] = str(self.otp.ei_include)
            env["ERL_EI_LIBDIR"] = env["ERL_INTERFACE_LIB_DIR"] = str(self.otp.ei_lib)
            # port_compiler's names (its hooks' Makefiles use them too); pc itself takes
            # ERL_CFLAGS and ERL_EI_LIBDIR from the environment
            env["ERL_CFLAGS"] = self.otp.erl_cflags
            env["ERL_LDFLAGS"] = f'-L"{self.otp.ei_lib}" -lei'
        return env

    def rebar_env(self) -> dict[str, str]:
        """port_compiler's cross-build switches: REBAR_TARGET_ARCH (a GNU triple; "darwin" in it
        selects pc's macOS link flags) and its word size (pc would otherwise probe <arch>-gcc)."""
        arch = "i686" if self.target.arch == "x86" else self.target.arch
        if self.target.os == "macos":
            triple = f"{arch}-apple-darwin"
        elif self.target.os == "windows":
            triple = f"{arch}-w64-mingw32"
        else:
            triple = self.target.multiarch or f"{arch}-linux-{self.target.abi}"
        return {"REBAR_TARGET_ARCH": triple, "REBAR_TARGET_ARCH_WORDSIZE": str(self.target.bits)}


def render_env(env: dict[str, str], fmt: str) -> str:
    """Print an environment as sh, fish or JSON."""
    if fmt == "json":
        return json.dumps(env, indent=2, sort_keys=True)
    if fmt == "fish":
        return "\n".join(f"set -gx {k} {shlex.quote(v)};" for k, v in sorted(env.items()))
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))


def zig_toolchain(target: str | Target, *, otp_root: str | Path | None = None,
                  sysroot: str | Path | None = None) -> ZigToolchain:
    """The zig toolchain for `target` (its wrappers are written on first use of `.env()`)."""
    return ZigToolchain(target, otp_root=otp_root, sysroot=sysroot)
