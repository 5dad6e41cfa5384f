"""The hot-upgrade gate on hand-made releases (fast, no Erlang): every rule refuses its own case, and the case
passes once that rule is taken out (so each test would fail if its rule were deleted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xrel.upgrade import gate
from xrel.upgrade.facts import Release, parse_rel

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57
SYS_CONFIG = """%% coding: utf-8
[{kernel, [{inet_dist_listen_min, 9100}, {logger_level, info}]},
 {my_app, [{greeting, "hi [there] {x}"}, {char, $]}]}, % a comment with ] and }
 {'quoted app', []}].
"""


def write_release(root: Path, version: str, apps: dict[str, str], files: dict[str, bytes | str],
                  name: str = "my_app", target: str = "x86_64-linux-gnu") -> Path:
    """A mix-like release: start_erl.data, releases/<vsn>/<name>.rel, xrel's marker, erts and lib dirs."""
    libs = ",\n  ".join(f'{{{app}, "{vsn}", permanent}}' for app, vsn in apps.items())
    base = {
        "releases/start_erl.data": f"13.1.5 {version}\n",
        f"releases/{version}/{name}.rel": f'{{release, {{"{name}", "{version}"}}, {{erts, "13.1.5"}},\n [{libs}]}}.\n',
        "releases/xrel.json": json.dumps({"target": target, "otp_version": "25.2.3", "erts_version": "13.1.5",
                                          "nif_version": "2.16", "runtime_source": "debian"}),
        "erts-13.1.5/bin/beam.smp": ELF + b"erts",
        f"releases/{version}/vm.args": "-kernel inet_dist_use_interface {127,0,0,1}\n",
        f"releases/{version}/env.sh": "#!/bin/sh\n",
        f"releases/{version}/sys.config": SYS_CONFIG,
        f"releases/{version}/consolidated/Elixir.Enumerable.beam": b"FOR1 protocol",
    }
    base.update({f"lib/{app}-{vsn}/ebin/{app}.app": f"{{application, {app}, [{{vsn, \"{vsn}\"}}]}}.\n"
                 for app, vsn in apps.items()})
    for rel, data in {**base, **files}.items():
        path = root / rel.replace("{vsn}", version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return root


APPS = {"kernel": "8.5.3", "stdlib": "4.2", "sasl": "4.2", "elixir": "1.14.0", "my_dep": "0.1.0"}
OLD_FILES = {"lib/my_dep-0.1.0/priv/my_nif.so": ELF + b"nif 1", "lib/stdlib-4.2/ebin/lists.beam": b"FOR1 lists"}


def pair(tmp: Path, new_apps: dict | None = None, new_files: dict | None = None, **new) -> tuple[Release, Release]:
    old = write_release(tmp / "old", "1.0.0", {**APPS, "my_app": "1.0.0"},
                        {**OLD_FILES, "lib/my_app-1.0.0/ebin/Elixir.MyApp.beam": b"FOR1 v1"})
    apps = {**APPS, "my_app": "2.0.0", **(new_apps or {})}
    new_release = write_release(tmp / "new", new.pop("version", "2.0.0"), {k: v for k, v in apps.items() if v},
                                {**OLD_FILES, "lib/my_app-2.0.0/ebin/Elixir.MyApp.beam": b"FOR1 v2",
                                 **(new_files or {})}, **new)
    return Release.open(old), Release.open(new_release)


def test_a_plain_code_change_is_hot(tmp_path):
    old, new = pair(tmp_path, new_files={"lib/my_dep-0.1.0/ebin/Elixir.MyDep.beam": b"FOR1 dep changed",
                                         "releases/{vsn}/sys.config": SYS_CONFIG.replace('"hi', '"hello')})
    assert gate.reasons(old, new) == []
    assert (old.version, new.version, new.target, new.apps["my_app"]) == ("1.0.0", "2.0.0", "x86_64-linux-gnu", "2.0.0")


CASES = {
    "same_release": ({"target": "aarch64-linux-gnu"}, "for x86_64-linux-gnu, not aarch64-linux-gnu"),
    "new_version": ({"version": "1.0.0", "new_apps": {"my_app": "1.0.0"}}, "both releases are version 1.0.0"),
    "has_sasl": ({"new_apps": {"sasl": None}}, "add :sasl"),
    "same_erts": ({"new_files": {"erts-13.1.5/bin/beam.smp": ELF + b"erts rebuilt"}}, "ERTS 13.1.5 has other bytes"),
    "same_platform": ({"new_files": {"lib/stdlib-4.2/ebin/lists.beam": b"FOR1 lists rebuilt"}},
                      "stdlib 4.2 (new bytes)"),
    "same_natives": ({"new_files": {"lib/my_dep-0.1.0/priv/my_nif.so": ELF + b"nif 2"}}, "my_dep/priv/my_nif.so"),
    "same_protocols": ({"new_files": {"releases/{vsn}/consolidated/Elixir.Enumerable.beam": b"FOR1 more impls"}},
                       "consolidated protocols changed"),
    "same_boot_files": ({"new_files": {"releases/{vsn}/vm.args": "+P 5000000\n"}}, "vm.args changed"),
    "same_boot_config": ({"new_files": {"releases/{vsn}/sys.config": SYS_CONFIG.replace("9100", "9200")}},
                         "sys.config changed for kernel"),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_refuses_its_case_and_only_it_does(tmp_path, rule):
    change, expected = CASES[rule]
    old, new = pair(tmp_path, **dict(change))
    found = gate.reasons(old, new)
    assert len(found) == 1 and expected in found[0], found
    assert "\n" not in found[0]
    others = [r for r in gate.RULES if r.__name__ != rule]
    assert len(others) == len(gate.RULES) - 1, f"no rule named {rule}"
    assert gate.reasons(old, new, others) == []  # this case is caught by `rule` alone


def test_every_rule_has_a_case():
    assert sorted(CASES) == sorted(r.__name__ for r in gate.RULES)


def test_a_new_erts_version_and_a_new_elixir_are_named(tmp_path):
    old, new = pair(tmp_path, new_apps={"elixir": "1.15.0"})
    assert gate.reasons(old, new) == ["Elixir/OTP applications changed (elixir 1.14.0 -> 1.15.0): they have no "
                                      "appups, restart"]
    new.erts_version = "14.0"
    assert any("ERTS changed (13.1.5 -> 14.0)" in r for r in gate.reasons(old, new))


def test_an_added_nif_and_a_removed_one_refuse(tmp_path):
    old, new = pair(tmp_path, new_files={"lib/my_app-2.0.0/priv/new.so": ELF})
    assert "my_app/priv/new.so" in gate.same_natives(old, new)[0]
    assert "my_app/priv/new.so" in gate.same_natives(new, old)[0]


def test_sys_config_sections():
    sections = gate.config_sections(SYS_CONFIG)
    assert sorted(sections) == ["kernel", "my_app", "quoted app"]
    assert sections["my_app"] == '{my_app,[{greeting,"hi[there]{x}"},{char,$]}]}'
    assert gate.config_sections("%% coding: utf-8\n%% RUNTIME_CONFIG=false\n[].\n") == {}


def test_parse_rel_reads_mix_output():
    text = ('%% coding: utf-8\n{release,{"hot_app","2.0.0"},\n         {erts,"13.1.5"},\n'
            '         [{kernel,"8.5.3",permanent},\n          {iex,"1.14.0",none},\n'
            "          {'odd app',\"0.1.0+xrel.1\",permanent}]}.\n")
    assert parse_rel(text, "x.rel") == ("hot_app", "2.0.0", "13.1.5",
                                        {"kernel": "8.5.3", "iex": "1.14.0", "odd app": "0.1.0+xrel.1"})
