"""The node agent (xrel_node, plain Erlang in agent/) compiled for one project: its BEAM files built
once by the compiling OTP's erlc (+deterministic), and its .app carrying the project's [node] settings
and public key. mix adds it to every release like any other application (wrapper.exs, XREL_NODE_AGENT)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from xrel import __version__
from xrel.errors import UsageError
from xrel.node.script import template_text
from xrel.node.section import NodeConfig
from xrel.storage import cache

APP = "xrel_node"
# OTP applications the agent runs on: HTTPS, signatures, the release's own unpacking
NEEDS = ("kernel", "stdlib", "crypto", "public_key", "ssl", "inets")


@dataclass(frozen=True)
class NodeAgent:
    """The compiled agent of one project: `lib_dir` is xrel_node-<vsn>/ (ebin/ inside)."""

    lib_dir: Path
    config: NodeConfig
    digest: str  # of sources, settings and compiler: part of every target's build inputs

    @property
    def ebin(self) -> Path:
        return self.lib_dir / "ebin"


def sources() -> list[Path]:
    """The agent's modules and the minisign verifier it shares with `xrel verify`'s Erlang proof."""
    agent = resources.files("xrel.node") / "agent"
    return sorted([Path(str(p)) for p in agent.iterdir() if p.name.endswith(".erl")]
                  + [Path(str(resources.files("xrel.signing") / "xrel_minisign.erl"))])


def _term(value: object) -> str:
    """An Erlang term for a str (as a charlist), int, or (module, function) pair."""
    if isinstance(value, tuple):
        return "{" + ", ".join(f"'{v}'" for v in value) + "}"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def app_file(config: NodeConfig, app: str, public_key: str, modules: list[str], starts_after: list[str]) -> str:
    """The .app resource: the settings as application env; started after the project's own apps."""
    env = {"feed": config.feed, "interval": config.interval, "probation": config.probation,
           "app": app, "public_key": public_key, "tag_prefix": config.tag_prefix}
    if config.health_check:
        env["health_check"] = config.health_check
    if config.cacertfile:
        env["cacertfile"] = config.cacertfile
    return (f"{{application, {APP}, [\n  {{description, \"xrel node agent\"}},\n  {{vsn, \"{__version__}\"}},\n"
            f"  {{modules, [{', '.join(modules)}]}},\n  {{registered, [xrel_node, xrel_node_sup]}},\n"
            f"  {{applications, [{', '.join([*NEEDS, *starts_after])}]}},\n  {{mod, {{xrel_node_app, []}}}},\n"
            f"  {{env, [{', '.join(f'{{{k}, {_term(v)}}}' for k, v in sorted(env.items()))}]}}\n]}}.\n")


def prepare_agent(config: NodeConfig, app: str, public_key: str, starts_after: list[str],
                  erlc: str, otp_release: str) -> NodeAgent:
    """The project's agent in the cache (compiled once per sources, settings and OTP release)."""
    files = sources()
    modules = [f.stem for f in files]
    app_text = app_file(config, app, public_key, modules, starts_after)
    script = template_text()  # bin/xrel-node's template
    digest = hashlib.sha256("\0".join([__version__, otp_release, app_text, script,
                                       *(f.read_text() for f in files)]).encode()).hexdigest()
    final = cache.area("node-agents") / digest[:24] / f"{APP}-{__version__}"
    if not (final / "ebin" / f"{APP}.app").is_file():
        with cache.locked("node-agents", digest[:24]), cache.staging(final) as tmp:
            (tmp / "ebin").mkdir()
            out = subprocess.run([erlc, "+deterministic", "-o", str(tmp / "ebin"), *map(str, files)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise UsageError(f"compiling the node agent failed: {(out.stderr or out.stdout).strip()[:400]}",
                                 "report this with `erlc -version`")
            (tmp / "ebin" / f"{APP}.app").write_text(app_text)
    return NodeAgent(final, config, digest)


def erlc_for(erl_root: Path) -> str:
    """The erlc of the compiling OTP (the one whose erl runs mix)."""
    found = shutil.which("erlc", path=str(erl_root / "bin"))
    if not found:
        raise UsageError(f"no erlc in {erl_root}/bin", "install the Erlang development tools (erlang-dev)")
    return found


def agent_for(config, app: str, umbrella: bool, erl_root: Path, otp_release: str) -> NodeAgent | None:
    """The project's agent when xrel.toml has a [node] table (None otherwise); [node] needs [signing]."""
    node = config.sections.get("node") if config else None
    if node is None:
        return None
    signing = config.sections.get("signing")
    if signing is None:
        raise UsageError(f"{config.path}: [node] needs [signing] public_key: the agent verifies every release "
                         "with it", 'run `xrel keygen` and add [signing] public_key = "xrel.pub"')
    public_key = signing.public_key_path.read_text()
    return prepare_agent(node, app, public_key, [] if umbrella else [app], erlc_for(erl_root), otp_release)
