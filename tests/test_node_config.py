"""xrel.toml's [node] table, the agent's .app it becomes, and the one-line errors for bad settings (fast)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from xrel.node.agent import agent_for, app_file
from xrel.node.section import NodeConfig
from xrel.project.config import ConfigError, load_config
from xrel.signing.keys import generate_keypair


def load(tmp_path: Path, text: str):
    (tmp_path / "xrel.toml").write_text(text)
    return load_config(tmp_path)


def node(tmp_path: Path, body: str) -> NodeConfig:
    return load(tmp_path, f"[node]\n{body}").sections["node"]


def test_defaults_and_durations(tmp_path):
    cfg = node(tmp_path, 'feed = "https://releases.example.com/shop"\ninterval = "5m"\nprobation = "1h"\n')
    assert (cfg.feed, cfg.interval, cfg.probation, cfg.max_attempts, cfg.restart_sec) == \
        ("https://releases.example.com/shop", 300, 3600, 3, 5)
    assert (cfg.health_check, cfg.tag_prefix) == (None, "v")


@pytest.mark.parametrize("text,expected", [
    ("Shop.Health.check", ("Elixir.Shop.Health", "check")),
    ("Shop.healthy?", ("Elixir.Shop", "healthy?")),
    ("shop_health:check", ("shop_health", "check")),
])
def test_health_check_names(tmp_path, text, expected):
    assert node(tmp_path, f'feed = "github:acme/shop"\nhealth_check = "{text}"\n').health_check == expected


@pytest.mark.parametrize("body,line,words", [
    ('feed = "ftp://x"\n', 2, ["feed must be an https:// URL or github:OWNER/REPO"]),
    ('interval = 5\n', 1, ["[node] feed must be"]),
    ('feed = "github:a/b"\ninterval = "soon"\n', 3, ["interval = 'soon' is not a duration"]),
    ('feed = "github:a/b"\nprobation = 2\n', 3, ["probation = 2 is not a duration of at least 5 s"]),
    ('feed = "github:a/b"\nhealth_check = "check"\n', 3, ["health_check = 'check' names no function"]),
    ('feed = "github:a/b"\nservice = "a b"\n', 3, ["service = 'a b' is not valid"]),
    ('feed = "github:a/b"\nfed = 1\n', 3, ["unknown key 'fed' in [node]", "known keys: feed"]),
])
def test_bad_node_tables(tmp_path, body, line, words):
    with pytest.raises(ConfigError) as error:
        node(tmp_path, body)
    message = str(error.value)
    assert message.startswith(f"xrel.toml:{line}:") and "\n" not in message
    for word in words:
        assert word in message


def test_node_needs_signing(tmp_path):
    cfg = load(tmp_path, '[node]\nfeed = "github:acme/shop"\n')
    with pytest.raises(Exception, match=r"\[node\] needs \[signing\] public_key"):
        agent_for(cfg, "shop", False, Path("/nonexistent"), "25")


def test_the_app_file_is_an_erlang_term_carrying_the_settings(tmp_path):
    """What erl reads back from the generated .app: the settings, the key text, the boot order."""
    key = generate_keypair().public.text()
    cfg = NodeConfig(feed='https://x/"quoted"', interval=60, health_check=("Elixir.Shop.Health", "check"))
    text = app_file(cfg, "shop", key, ["xrel_node", "xrel_node_app"], ["shop"])
    (tmp_path / "xrel_node.app").write_text(text)
    out = subprocess.run(["erl", "-noshell", "-eval",
                          f'{{ok, [{{application, xrel_node, P}}]}} = file:consult("{tmp_path}/xrel_node.app"), '
                          'Env = proplists:get_value(env, P), '
                          'io:format("~p~n", [{proplists:get_value(applications, P), Env}]), halt().'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "shop]" in out.stdout and "{health_check,{'Elixir.Shop.Health',check}}" in out.stdout
    assert '"https://x/\\"quoted\\""' in out.stdout and "{interval,60}" in out.stdout
    assert key.splitlines()[1] in out.stdout
