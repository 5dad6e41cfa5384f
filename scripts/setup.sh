#!/usr/bin/env bash
# Makes this machine ready for xrel's demo, tests and benchmarks (Debian 12 / Ubuntu 24.04, as root
# or as a user with sudo), then installs xrel, built as a wheel, into the project's own virtual
# environment .venv/ (never into the system Python: PEP 668). Prints the venv's directory last.
# A second run with nothing changed does no apt or pip work and takes about a second.
#   PYTHON=/path/to/python3 scripts/setup.sh   use another Python (>= 3.10) for the venv
set -euo pipefail
exec 3>&1 1>&2   # everything goes to stderr; only the venv's path is printed on stdout (fd 3)
cd "$(dirname "$0")/.."
project=$(pwd)
venv="$project/.venv"
PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
say() { echo "setup: $*" >&2; }

# What apt brings, and why (the README lists the same):
packages=(
  erlang-nox erlang-dev elixir   # the host OTP + Elixir compile the BEAM code once for every target
  make cmake rebar3              # native deps are built with make, CMake or rebar3 (zig as the compiler)
  qemu-user-static binfmt-support  # `xrel run/smoke` boot foreign-CPU releases under qemu-user
  debian-archive-keyring         # verifies Debian's archive (the default runtime source), also on Ubuntu
  ca-certificates git            # HTTPS downloads; git for mix's git deps
  gcc g++ libc6-dev              # the tests also build fixtures natively, as a user's host `mix compile` does
  libsqlite3-dev                 # ... and one fixture NIF links the system's SQLite
  minisign nginx                 # the tests check signatures both ways with the real minisign, and serve dist/ with nginx
  systemd                        # (tests: systemd-analyze verify of the node unit)
)
# The venv needs ensurepip; Debian and Ubuntu ship it apart from python3, in python3-venv.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(command -v "$PYTHON")" != /usr/bin/python3 ]; then
    say "$PYTHON has no venv/ensurepip module: install them, or point PYTHON at another Python"; exit 3
  fi
  packages+=(python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing from apt: ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# qemu-user needs binfmt_misc: the release's start script is a host shell that execs target binaries.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || say "warning: cannot mount binfmt_misc"
fi
if ! ls /proc/sys/fs/binfmt_misc/ 2>/dev/null | grep -q '^qemu-arm$'; then
  $SUDO update-binfmts --enable >/dev/null 2>&1 || true
fi

# xrel itself: rebuilt only when its sources changed (the stamp is a digest of everything packaged).
stamp="$venv/.xrel-installed"
digest=$( (cat pyproject.toml; find toolchain recipes -type f ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum) \
  | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  echo "$venv" >&3; exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  say "creating the virtual environment $venv"
  "$PYTHON" -m venv "$venv"
fi
say "installing xrel (a wheel of this checkout) and its test tools into $venv"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
"${pip[@]}" wheel --no-deps --wheel-dir "$wheels" .
wheel=$(ls "$wheels"/xrel-*.whl)
"${pip[@]}" uninstall -y xrel >/dev/null 2>&1 || true
"${pip[@]}" install "xrel[test] @ file://$wheel"
echo "$digest" > "$stamp"
echo "$venv" >&3
