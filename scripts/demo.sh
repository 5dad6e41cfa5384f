#!/usr/bin/env bash
# The demo: cross-build a mix project with a C NIF, a C port program and crypto for a Raspberry Pi
# (armv7, OTP 25 from Debian) on this x86_64 machine, then boot it under qemu-user and print what
# the NIF reports from the emulated CPU.  Usage: scripts/demo.sh [TARGET]   (default: armhf)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv=$("$here/scripts/setup.sh")
export PATH="$venv/bin:$PATH"   # xrel as installed in the project's venv
export XREL_KEEP_MIX=0            # a one-off build: no mix VM kept for a next one

target="${1:-arm-linux-gnueabihf}"
work="$(mktemp -d -t xrel-demo-XXXXXX)"
cp -r "$here/tests/fixtures/nif_make" "$here/tests/fixtures/elixir_make" "$work/"
cd "$work/nif_make"

echo "== xrel build --target $target --tarball   (project copied to $work/nif_make)"
xrel build --target "$target" --tarball
echo
echo "== xrel inspect"
xrel inspect _build/xrel/nif_make-0.1.0-"$target".tar.gz | tail -n 4
echo
echo "== xrel run: the release on an emulated $target CPU"
xrel run _build/xrel/nif_make-0.1.0-"$target".tar.gz eval 'IO.puts(Fixture.report())'
