"""One target's build: every per-target fact the build steps share, in one typed context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xrel.host import HostErlang
from xrel.release.mix import Project
from xrel.release.workspace import Workspace
from xrel.runtimes import Runtime
from xrel.targets import Target
from xrel.zig.toolchain import ZigToolchain

if TYPE_CHECKING:
    from xrel.node.agent import NodeAgent


@dataclass(frozen=True)
class BuildOptions:
    """The choices of one `xrel build`, the same for every target."""

    otp: str | None = None
    source: str | None = None
    offline: bool = False
    mix_target: str | None = None
    sysroot_packages: tuple[str, ...] = ()
    node_agent: NodeAgent | None = None  # [node] in xrel.toml: the agent every release carries
    tarball: bool = False  # True: the target's tarball too (--tarball, `xrel dist`); else it is removed


@dataclass(frozen=True)
class TargetBuild:
    """A target's build: the project, the runtime and toolchain for the target, its build tree and
    the environment of its mix runs. `notes` collects what the target's result reports."""

    project: Project
    target: Target
    release: str  # the release's name
    out: Path  # xrel's output dir
    options: BuildOptions
    host: HostErlang
    runtime: Runtime
    toolchain: ZigToolchain
    sysroot: Path | None
    workspace: Workspace
    env: dict[str, str]  # every mix run of this target
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"[{self.target.id}]"

    @property
    def state_dir(self) -> Path:
        """Beside the build tree: the log, the last build's record, mix's release info."""
        return self.workspace.root.parent

    @property
    def log(self) -> Path:
        return self.state_dir / "build.log"

    @property
    def record(self) -> Path:
        return self.state_dir / "last-build.json"

    @property
    def native_stamp(self) -> Path:
        """What the tree's native outputs were last compiled from (absent: never, or mix compiles them)."""
        return self.state_dir / "native-inputs"

    @property
    def release_info(self) -> Path:
        """Where xrel's mix wrapper writes what `mix release` did (XREL_RELEASE_INFO)."""
        return self.state_dir / "release-info.json"

    @property
    def beam_mark(self) -> Path:
        """Written by xrel's mix wrapper when the tree's BEAM compile starts (XREL_BEAM_MARK)."""
        return self.state_dir / "beam-compile-started"

    @property
    def release_dir(self) -> Path:
        return self.out / self.target.id / self.release

    @property
    def lib_dir(self) -> Path:
        """The tree's compiled apps, `_build/<env>/lib`."""
        return self.workspace.build_dir / self.project.build_subdir / "lib"
