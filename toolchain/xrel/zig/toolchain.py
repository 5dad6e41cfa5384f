"""zig as the C/C++ toolchain for a target: the toolchain directory and the build environment.

The files in that directory are written by wrappers.py; the compiler wrappers' configuration
(CcConfig) maps host paths with host_paths.py; OtpHeaders finds a target OTP root's headers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path

from xrel.storage import cache
from xrel.storage.files import write_if_changed
from xrel.targets import Target
from xrel.zig.ccconfig import CcConfig
from xrel.zig.host_paths import HOST_ONLY_PREFIXES, host_path_map, sysroot_flags
from xrel.zig.locate import find_zig
from xrel.zig.otp_headers import OtpHeaders
from xrel.zig.wrappers import cmake_toolchain, filter_python, write_wrappers

__all__ = ["HOST_ONLY_PREFIXES", "OtpHeaders", "ZigToolchain", "render_env", "zig_toolchain"]

# The fixed names compiled objects get for the machine's directories (debug info, __FILE__):
# the same sources give the same bytes from any cache dir, user or machine.
CACHE_NAME = "/xrel-cache"
ZIG_LIB_NAME = "/zig-lib"
SYSROOT_NAME = "/xrel-sysroot"
OTP_NAME = "/xrel-otp"


def zig_lib_dir(zig: Path) -> Path | None:
    """zig's lib dir (its libc and clang headers, compiler_rt's sources), found as zig finds it:
    $ZIG_LIB_DIR, else lib/zig or lib beside its binary or a directory above."""
    if os.environ.get("ZIG_LIB_DIR"):
        return Path(os.environ["ZIG_LIB_DIR"])
    for d in (zig.parent, *zig.parent.parents):
        for lib in (d / "lib" / "zig", d / "lib"):
            if (lib / "std" / "std.zig").is_file():
                return lib
    return None


def machine_prefix_maps(zig: Path, otp_root: Path | None, sysroot: Path | None) -> tuple[tuple[str, str], ...]:
    """Machine dir -> fixed name, for the wrapper's -ffile-prefix-map (CcConfig.prefix_maps): xrel's
    cache (and the real dirs of areas linked into it, as `dist --check`'s scratch cache links them),
    zig's lib dir, the sysroot and the target OTP root. Each as given and resolved; shortest first,
    since clang applies the last map that matches."""
    root = cache.cache_root()
    dirs: list[tuple[Path, str]] = [(root, CACHE_NAME)]
    dirs += [(root / a, f"{CACHE_NAME}/{a}") for a in cache.AREAS if (root / a).is_symlink()]
    lib = zig_lib_dir(zig)
    dirs += [(d, name) for d, name in ((lib, ZIG_LIB_NAME), (sysroot, SYSROOT_NAME), (otp_root, OTP_NAME)) if d]
    pairs: dict[str, str] = {}
    for d, name in dirs:
        for spelling in (os.path.normpath(d), os.path.realpath(d)):
            pairs.setdefault(spelling, name)
    return tuple(sorted(pairs.items(), key=lambda pair: len(pair[0])))


class ZigToolchain:
    """zig wrappers and environment for building native code for one target."""

    def __init__(self, target: Target | str, otp_root: Path | None = None, sysroot: Path | None = None):
        self.target = Target.parse(target)
        self.otp = OtpHeaders(Path(otp_root)) if otp_root else None
        self.sysroot = Path(sysroot) if sysroot else None
        self.zig = find_zig()

    def cc_config(self, mode: str) -> CcConfig:
        """What the compiler wrapper for `mode` ("cc" or "c++") is told about the target."""
        return CcConfig(
            os=self.target.os,
            arch=self.target.arch,
            mode=mode,
            zig=str(self.zig.path),
            target=self.target.zig_triple,
            cpu=self.target.zig_cpu,
            path_map=host_path_map(self.target, self.otp, self.sysroot),
            drop_paths=HOST_ONLY_PREFIXES,
            extra=sysroot_flags(self.target, self.sysroot),
            prefix_maps=machine_prefix_maps(self.zig.path, self.otp.root if self.otp else None, self.sysroot),
        )

    @property
    def directory(self) -> Path:
        """Wrappers live in a dir named by target and a hash of their configuration."""
        key = json.dumps([self.cc_config("cc")._asdict(), filter_python()], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return cache.area("toolchains") / f"{self.target.id}-{digest}"

    def write(self) -> Path:
        """Create or refresh the wrappers; unchanged files are left untouched."""
        d = self.directory
        write_wrappers(d, self.target, self.zig.path, {mode: self.cc_config(mode) for mode in ("cc", "c++")})
        roots = [p for p in (self.otp.root if self.otp else None, self.sysroot) if p]
        write_if_changed(d / "toolchain.cmake", cmake_toolchain(d, self.target, self.zig.version, roots))
        return d

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
