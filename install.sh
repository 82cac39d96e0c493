#!/bin/sh
# Installs claude-vm. From a source checkout (this script next to Cargo.toml) it builds with
# cargo; release downloads arrive with `claude-vm update`'s release assets.
set -eu

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ -f "$here/Cargo.toml" ] && grep -q '^name = "claude-vm"' "$here/Cargo.toml"; then
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build from source: https://rustup.rs"
  say "building claude-vm from $here"
  cargo install --locked --path "$here"
else
  die "run this script from a claude-vm source checkout"
fi

if ! command -v limactl >/dev/null 2>&1; then
  say ""
  say "claude-vm needs Lima 2.0 or later: https://lima-vm.io/docs/installation/"
  say "  macOS:  brew install lima"
  say "  Linux:  brew install lima, or the release tarball from https://github.com/lima-vm/lima/releases"
fi
