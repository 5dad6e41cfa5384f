"""What `xrel build` returns: one TargetResult per target inside a BuildResult (`--json` is their to_dict)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from xrel.inspection.binaries import BinaryInfo
from xrel.inspection.check import Finding
from xrel.runtimes import Runtime
from xrel.targets import Target

# Runtime.to_dict keys every runtime has; the others (urls, sha256, packages, ...) depend on its source.
_RUNTIME_CORE = ("path", "target", "otp_version", "erts_version", "nif_version", "source")


@dataclass(frozen=True)
class RuntimeInfo:
    """The runtime a release was built with, as Runtime.to_dict() describes it."""

    path: str
    target: str
    otp_version: str
    erts_version: str
    nif_version: str
    source: str
    details: dict = field(default_factory=dict)  # the source-specific keys, in Runtime.to_dict's order

    @property
    def sha256(self) -> str | None:
        return self.details.get("sha256")

    @classmethod
    def from_dict(cls, data: dict) -> RuntimeInfo:
        details = {k: v for k, v in data.items() if k not in _RUNTIME_CORE}
        return cls(**{k: data[k] for k in _RUNTIME_CORE}, details=details)

    @classmethod
    def of(cls, runtime: Runtime) -> RuntimeInfo:
        return cls.from_dict(runtime.to_dict())

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in _RUNTIME_CORE}, **self.details}


def native_file(finding: Finding) -> BinaryInfo:
    """An inspected file of a release as BinaryInfo, its path relative to the release."""
    info = finding.info if isinstance(finding.info, dict) else asdict(finding.info)
    return BinaryInfo(**{**info, "path": finding.path})


@dataclass
class TargetResult:
    target: str
    release_dir: str
    tarball: str | None  # None: built without one (no --tarball)
    sha256: str | None
    otp_version: str
    erts_version: str
    nif_version: str
    runtime: RuntimeInfo
    glibc_floor: str | None
    native_files: list[BinaryInfo]
    needed_libraries: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)
    elixir_version: str | None = None  # the Elixir that compiled the BEAM code

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "runtime": self.runtime.to_dict(), "native_files": [asdict(f) for f in self.native_files]}

    def manifest_entry(self) -> dict:
        """This target's entry in the output dir's manifest.json."""
        file = Path(self.tarball).name if self.tarball else None
        return {"target": self.target, "file": file, "sha256": self.sha256, "otp": self.otp_version,
                "erts": self.erts_version, "nif": self.nif_version, "runtime_source": self.runtime.source,
                "runtime_sha256": self.runtime.sha256, "glibc_floor": self.glibc_floor, "elixir": self.elixir_version,
                "libc": Target.parse(self.target).libc}

    @classmethod
    def from_dict(cls, data: dict) -> TargetResult:
        return cls(**{**data, "runtime": RuntimeInfo.from_dict(data["runtime"]),
                      "native_files": [BinaryInfo(**f) for f in data["native_files"]]})


@dataclass
class BuildResult:
    project: str
    release: str
    version: str
    out: str
    manifest: str
    targets: list[TargetResult]
    compiled_by: dict = field(default_factory=dict)  # the OTP + Elixir that compiled the BEAM code, and why

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "targets": [t.to_dict() for t in self.targets]}
