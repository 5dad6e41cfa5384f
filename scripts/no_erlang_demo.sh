#!/usr/bin/env bash
# The provided host toolchain, shown on a machine with NO Erlang or Elixir: installs only python3-venv,
# make and qemu-user, installs xrel into a venv, then builds the nif_make fixture (a C NIF and a port
# program) for armhf from an xrel.toml pinning OTP 25 + Elixir 1.14, and boots it under qemu. Every
# Erlang/Elixir file comes from xrel's cache. Run it in a stock Debian 12 root, as root:
#   ../shared/tools/stock-debian 'bash scripts/no_erlang_demo.sh'
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv make qemu-user-static binfmt-support >/dev/null
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable >/dev/null 2>&1 || true
python3 -m venv "$HOME/xrel-venv" && "$HOME"/xrel-venv/bin/pip install -q "$here"
echo "== erl/elixir on this machine: $(command -v erl elixir mix || echo none)"
if command -v erl >/dev/null; then echo "erl is installed: this demo wants a machine without it"; exit 1; fi
work=$(mktemp -d) && cp -r "$here/tests/fixtures/nif_make" "$here/tests/fixtures/elixir_make" "$work/" && cd "$work/nif_make"
printf 'otp = "25"\nelixir = "1.14"\ntargets = ["arm-linux-gnueabihf"]\n' > xrel.toml
cat xrel.toml
time XREL_KEEP_MIX=0 "$HOME"/xrel-venv/bin/xrel build --tarball   # (one-off: no mix VM kept)
"$HOME"/xrel-venv/bin/xrel run _build/xrel/nif_make-0.1.0-otp25-arm-linux-gnueabihf.tar.gz eval 'IO.puts(Fixture.report())'
echo "== still no erl/elixir installed: $(command -v erl elixir mix || echo none)"
if command -v erl >/dev/null; then echo "erl is installed: this demo wants a machine without it"; exit 1; fi
ls ~/.cache/xrel/runtimes/
sed -n '/^\[host/,/^$/p' xrel.lock
