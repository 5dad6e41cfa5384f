#!/usr/bin/env bash
# Installs everything xrel's demo and tests need on a Debian 12 (or Ubuntu) machine, as root:
# Erlang/OTP + Elixir (the host compiles BEAM code), make/cmake/rebar3 (native deps),
# qemu-user + binfmt (booting foreign releases), then xrel itself with its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(erlang-nox erlang-dev elixir make cmake rebar3 qemu-user-static binfmt-support ca-certificates git)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# qemu-user needs binfmt_misc: the release's start script is a host shell that execs target binaries.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || echo "warning: cannot mount binfmt_misc"
fi
$SUDO update-binfmts --enable >/dev/null 2>&1 || true

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'
