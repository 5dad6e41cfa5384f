"""Typed results keep their JSON shape: `xrel build --json` (TargetResult, BuildResult), `xrel smoke --json`."""

from __future__ import annotations

import json
from pathlib import Path

from xrel.emulate.smoke import CryptoCheck, ModuleFailure, SmokeReport, SystemInfo, parse_smoke_output
from xrel.inspection.binaries import BinaryInfo
from xrel.release.results import BuildResult, RuntimeInfo, TargetResult
from xrel.runtimes import Runtime

RUNTIME_META = {"target": "aarch64-linux-gnu", "otp_version": "25.3", "otp_major": 25, "erts_version": "13.2",
                "nif_version": "2.16", "source": "debian", "sha256": "ab" * 32, "glibc_floor": None,
                "suite": "bookworm", "urls": ["https://deb.example/erlang.deb"]}


def target_result() -> TargetResult:
    nif = BinaryInfo("lib/x-1/priv/x.so", "elf", "shared", 183, 64, "little", "linux", "glibc", None,
                     None, "2.17", None, ["libc.so.6"])
    return TargetResult("aarch64-linux-gnu", "/out/aarch64-linux-gnu/app", "/out/app-0.1.0-aarch64-linux-gnu.tar.gz",
                        "cd" * 32, "25.3", "13.2", "2.16", RuntimeInfo.of(Runtime(Path("/rt"), RUNTIME_META)),
                        "2.17", [nif], ["libc.so.6"], 1.5, ["a note"])


def test_runtime_info_is_runtime_to_dict_key_for_key():
    runtime = Runtime(Path("/rt"), RUNTIME_META)
    info = RuntimeInfo.of(runtime)
    assert list(info.to_dict().items()) == list(runtime.to_dict().items())
    assert info.source == "debian" and info.sha256 == "ab" * 32


def test_target_result_json_shape_and_round_trip():
    result = target_result()
    data = json.loads(json.dumps(result.to_dict()))
    assert list(data) == ["target", "release_dir", "tarball", "sha256", "otp_version", "erts_version", "nif_version",
                          "runtime", "glibc_floor", "native_files", "needed_libraries", "seconds", "notes",
                          "elixir_version"]
    assert data["native_files"] == [{"path": "lib/x-1/priv/x.so", "format": "elf", "kind": "shared", "machine": 183,
                                     "bits": 64, "endian": "little", "os": "linux", "libc": "glibc",
                                     "float_abi": None, "interpreter": None, "glibc_floor": "2.17", "macos_min": None,
                                     "needed": ["libc.so.6"]}]
    assert data["runtime"]["glibc_floor"] is None and "packages" not in data["runtime"]
    assert TargetResult.from_dict(data) == result
    assert result.manifest_entry() == {"target": "aarch64-linux-gnu", "file": "app-0.1.0-aarch64-linux-gnu.tar.gz",
                                       "sha256": "cd" * 32, "otp": "25.3", "erts": "13.2", "nif": "2.16",
                                       "runtime_source": "debian", "runtime_sha256": "ab" * 32, "glibc_floor": "2.17",
                                       "elixir": None, "libc": "glibc"}
    build = BuildResult("app", "app", "0.1.0", "/out", "/out/manifest.json", [result]).to_dict()
    assert build["targets"] == [result.to_dict()] and build["project"] == "app"


SMOKE_OUTPUT = "\n".join([
    "booting",
    "XREL-SMOKE\tapp\tcrypto-5.1\t40\t0",
    "XREL-SMOKE\tapp\tnif-0.1.0\t2\t1",
    "XREL-SMOKE\tfail\tnif-0.1.0\tElixir.Nif\t{:on_load_failure, :x}",
    "XREL-SMOKE\tmapped\t/rel/lib/crypto-5.1/priv/lib/crypto.so",
    "XREL-SMOKE\tcrypto\tok\t0123\tOpenSSL 3.0.11",
    "XREL-SMOKE\tsystem\taarch64-unknown-linux-gnu\t25\t8",
    "The on_load function for module Elixir.Nif returned:",
    "  {:error, {:load_failed, 'cannot open'}}",
    "",
])


def test_smoke_output_is_parsed_into_typed_facts():
    parsed = parse_smoke_output(SMOKE_OUTPUT)
    assert parsed.apps == {"crypto-5.1": 40, "nif-0.1.0": 2} and parsed.modules == 42
    assert parsed.failures == [ModuleFailure("nif-0.1.0", "Elixir.Nif", "{:on_load_failure, :x}",
                                             "{:error, {:load_failed, 'cannot open'}}")]
    assert parsed.mapped == ["/rel/lib/crypto-5.1/priv/lib/crypto.so"]
    assert parsed.crypto == CryptoCheck("ok", "0123", "OpenSSL 3.0.11")
    assert parsed.system == SystemInfo("aarch64-unknown-linux-gnu", "25", 8)
    assert parse_smoke_output("no smoke here").crypto is None


def test_smoke_report_json_shape():
    parsed = parse_smoke_output(SMOKE_OUTPUT)
    report = SmokeReport("aarch64-linux-gnu", "qemu", False, parsed.apps, parsed.modules, parsed.failures, [], [],
                         parsed.crypto, parsed.system, ["1 module(s) failed to load"], ["tail"])
    data = report.to_dict()
    assert data["failures"] == [{"app": "nif-0.1.0", "module": "Elixir.Nif", "reason": "{:on_load_failure, :x}",
                                 "loader_error": "{:error, {:load_failed, 'cannot open'}}"}]
    assert data["crypto"] == {"status": "ok", "sha256": "0123", "library": "OpenSSL 3.0.11"}
    assert data["system"] == {"architecture": "aarch64-unknown-linux-gnu", "otp_release": "25", "wordsize": 8}
    unbooted = SmokeReport("x", "qemu", False, {}, 0, [], [], [], None, None, [], []).to_dict()
    assert unbooted["crypto"] == {} and unbooted["system"] == {}
