"""xrel.toml: good files load typed, every bad one fails on one line naming file:line, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrel.errors import UsageError
from xrel.project import config
from xrel.project.config import ConfigError, ProjectConfig, TargetPin, load_config
from xrel.targets import Target

FULL = """\
# the project's pins
otp = "25"
elixir = "1.14"
targets = [
  "arm-linux-gnueabihf",  # a comment in the list
  "arm64",
]
release = "myapp"
mix_env = "prod"
out = "_build/xrel"

[target.arm64]
source = "debian"
otp = "27"
glibc = "2.36"
sysroot_packages = ["libsqlite3-dev"]
"""


def load(tmp_path: Path, text: str) -> ProjectConfig | None:
    (tmp_path / "xrel.toml").write_text(text)
    return load_config(tmp_path)


def names(cfg: ProjectConfig) -> list[str]:
    return [pin.target.id for pin in cfg.targets]


def test_no_file_is_none(tmp_path):
    assert load_config(tmp_path) is None


def test_full_file(tmp_path):
    cfg = load(tmp_path, FULL)
    assert cfg.path == tmp_path / "xrel.toml"
    assert (cfg.otp, cfg.elixir, cfg.release, cfg.mix_env) == ("25", "1.14", "myapp", "prod")
    assert cfg.out == (tmp_path / "_build/xrel").resolve()
    assert names(cfg) == ["arm-linux-gnueabihf", "aarch64-linux-gnu.2.36"]
    arm64 = cfg.targets[1]
    assert arm64 == TargetPin(Target.parse("aarch64-linux-gnu.2.36"), "debian", "27", ("libsqlite3-dev",))
    assert cfg.targets[0] == TargetPin(Target.parse("arm-linux-gnueabihf"))
    assert dict(cfg.sections) == {}


GOOD = [
    # (text, attribute, expected)
    ("", "targets", ()),
    ('otp = "27.3.4.1"', "otp", "27.3.4.1"),
    ('otp = "OTP-27.3.4.1"', "otp", "27.3.4.1"),
    ('otp = "27.3"', "otp", "27.3"),
    ('elixir = "1.18.3"', "elixir", "1.18.3"),
    ('elixir = "1.18.0-rc.1"', "elixir", "1.18.0-rc.1"),
    ('out = "/abs/out"', "out", Path("/abs/out")),
    ("mix_env = 'staging'", "mix_env", "staging"),
    ('targets = ["aarch64-linux-gnu.2.28"]', "targets", (TargetPin(Target.parse("aarch64-linux-gnu.2.28")),)),
    ('targets = ["x86_64-windows", "x86_64-linux-musl"]\n[target.x86_64-windows]\nsource = "windows"', "targets",
     (TargetPin(Target.parse("x86_64-windows"), source="windows"), TargetPin(Target.parse("x86_64-linux-musl")))),
    ('targets = ["x86_64-macos"]\n[target."x86_64-apple-darwin"]\nsource = "path:/opt/otp"', "targets",
     (TargetPin(Target.parse("x86_64-macos"), source="path:/opt/otp"),)),
]


@pytest.mark.parametrize(("text", "attribute", "expected"), GOOD)
def test_good_files(tmp_path, text, attribute, expected):
    assert getattr(load(tmp_path, text), attribute) == expected


@pytest.mark.parametrize("table", ["arm64", "aarch64-linux-gnu", "aarch64-unknown-linux-gnu", '"linux/arm64"'])
def test_any_alias_names_the_target_table(tmp_path, table):
    cfg = load(tmp_path, f'targets = ["aarch64-linux-gnu", "armhf"]\n[target.{table}]\nglibc = "2.31"\n')
    assert names(cfg) == ["aarch64-linux-gnu.2.31", "arm-linux-gnueabihf"]


BAD = [
    # (text, line, words the message must hold)
    ('otp = "25"\notpp = "26"', 2, ["unknown key 'otpp'", "did you mean otp?"]),
    ('otp = 25', 1, ["otp must be a non-empty string"]),
    ('otp = "27.x"', 1, ["otp = '27.x' is not valid", 'otp = "27.3.4.1"']),
    ('otp = "27.1.2.3.4.5"', 1, ["otp = '27.1.2.3.4.5'"]),
    ('elixir = "1"', 1, ["elixir = '1' is not valid"]),
    ('elixir = "v1.18"', 1, ["elixir = 'v1.18'"]),
    ('release = "My App"', 1, ["release = 'My App'"]),
    ('out = ""', 1, ["out must be a non-empty string"]),
    ('targets = "arm64"', 1, ["targets must be a list", "[target.<name>]"]),
    ('targets = [\n  "arm64",\n  "armhfx",\n]', 3, ["unknown target 'armhfx'", "did you mean", "arm-linux-gnueabihf"]),
    ('targets = ["arm64", "aarch64-linux-gnu"]', 1, ["'aarch64-linux-gnu' repeats target aarch64-linux-gnu",
                                                     "listed as 'arm64'"]),
    ('targets = [\n "arm64",\n "arm64"\n]', 3, ["'arm64' repeats"]),
    ('targets = ["arm64"]\n\n[target.armhf]\nsource = "debian"', 3,
     ["[target.armhf] is for arm-linux-gnueabihf, which targets does not list", "add it to targets"]),
    ('targets = ["arm64"]\n[target.arm64]\n[target.aarch64-linux-gnu]', 3, ["second table for aarch64-linux-gnu"]),
    ('targets = ["arm64"]\n[target.nope]', 2, ["unknown target 'nope'"]),
    ('targets = ["arm64"]\n[target."arm64.2.28"]', 2, ["names a glibc floor", 'glibc = "2.28"']),
    ('targets = ["arm64"]\n[target.arm64]\nsorce = "debian"', 3,
     ["unknown key 'sorce' in [target.arm64]", "did you mean source?"]),
    ('targets = ["arm64"]\n[target.arm64]\nsource = "debain"', 3, ["unknown runtime source 'debain'"]),
    ('targets = ["arm64"]\n[target.arm64]\notp = "latest"', 3, ["otp in [target.arm64] = 'latest' is not valid"]),
    ('targets = ["arm64"]\n[target.arm64]\nglibc = "2.x"', 3, ["glibc in [target.arm64] = '2.x'"]),
    ('targets = ["arm64"]\n[target.arm64]\nsysroot_packages = "libz-dev"', 3, ["sysroot_packages in [target.arm64] "
                                                                               "must be a list of strings"]),
    ('targets = ["x86_64-macos"]\n[target.x86_64-macos]\nglibc = "2.28"', 3, ["only applies to glibc Linux"]),
    ('targets = ["arm64.2.28"]\n[target.arm64]\nglibc = "2.31"', 3,
     ["contradicts the floor of aarch64-linux-gnu.2.28"]),
    ('targets = ["arm64"]\ntarget = "arm64"', 2, ["target must hold one [target.<name>] table"]),
    ('otp = "25"\n\n[signin]\nkey = "x"', 3, ["unknown table [signin]", "did you mean", "signing"]),
    ('otp = "25"\nelixir = \n', 2, ["not valid TOML", "fix the syntax"]),
    ('otp = "25"\notp = "26"', 2, ["not valid TOML"]),
    ('otp = "25"\ntargets = ["arm64"]\n[targets.arm64]\nsource = "debian"', 3,
     ["[targets.<name>]", "rename the table to [target.<name>]"]),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD)
def test_bad_files(tmp_path, text, line, words):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert message.startswith(f"xrel.toml:{line}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_not_utf8(tmp_path):
    (tmp_path / "xrel.toml").write_bytes(b'otp = "\xff"')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path)


def test_a_registered_section_parses_its_own_table(tmp_path, monkeypatch):
    def signing(table: dict, loc: config.Locator) -> str:
        if "key" not in table:
            raise loc.error(None, f"{loc.name()} needs a key", 'write key = "..."')
        return table["key"]

    monkeypatch.setitem(config.SECTIONS, "signing", signing)
    assert load(tmp_path, '[signing]\nkey = "k1"\n').sections == {"signing": "k1"}
    with pytest.raises(ConfigError, match=r"^xrel.toml:2: \[signing\] needs a key"):
        load(tmp_path, 'otp = "25"\n[signing]\nother = 1\n')
    with pytest.raises(ConfigError, match=r"^xrel.toml:1: signing must be a table"):
        load(tmp_path, 'signing = "k1"\n')


def test_pin_for(tmp_path):
    cfg = load(tmp_path, FULL)
    assert cfg.pin_for(Target.parse("arm64")).source == "debian"
    assert cfg.pin_for(Target.parse("aarch64-linux-gnu.2.28")) is cfg.targets[1]  # matched whatever the floor
    assert cfg.pin_for(Target.parse("armhf")) is cfg.targets[0]
    assert cfg.pin_for(Target.parse("x86_64-windows")) is None


def test_locator_lines():
    text = 'a = 1\n\n[t.x]  # c\ns = """\nb = 2\n"""\nb = 3\n[t."y.z"]\nq.r = 1\n'
    loc = config.Locator.of(Path("xrel.toml"), text)
    assert loc.line("a") == 1
    assert loc.within("t").within("x").line() == 3
    assert loc.within("t").within("x").line("b") == 7  # not the line inside the multi-line string
    assert loc.within("t").within("y.z").line("q") == 9
    assert loc.within("t").within("nope").line("k") == 1
