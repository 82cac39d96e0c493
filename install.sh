#!/bin/sh
# Installs claude-vm.
#
#   ./install.sh                     in a source checkout (next to Cargo.toml): cargo install
#   sh install.sh [--version X] [--dir DIR]
#                                    anywhere else: the release for this OS and CPU, checked
#                                    against its .sha256, into DIR (default ~/.local/bin)
#
# Environment: CLAUDE_VM_UPDATE_REPO (OWNER/NAME, default claude-vm/claude-vm),
# CLAUDE_VM_DOWNLOAD_BASE (default https://github.com/OWNER/NAME/releases; the assets are
# at BASE/latest/download/ASSET and BASE/download/vX.Y.Z/ASSET).
set -eu

say() { printf '%s\n' "$*"; }
die() {
  printf 'install.sh: error: %s\n' "$1" >&2
  [ $# -lt 2 ] || printf '  hint: %s\n' "$2" >&2
  exit 1
}
usage() {
  cat <<'EOF'
Usage: install.sh [--version X] [--dir DIR] [--debug]

  --version X   install release X (1.2.3 or v1.2.3) instead of the latest
  --dir DIR     install into DIR instead of ~/.local/bin
  --debug       from a source checkout: build without optimizations (quick, for trying
                out changes)
EOF
}

version=""
dir=""
debug=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die "--version needs a value" "e.g. --version 0.2.0"; version=$2; shift 2 ;;
    --version=*) version=${1#--version=}; shift ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a value" "e.g. --dir ~/bin"; dir=$2; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    --debug) debug=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" "see the usage above" ;;
  esac
done
version=${version#v}
case "$version" in
  *[!0-9A-Za-z.+-]*) die "--version $version is not a release number" "e.g. --version 0.2.0" ;;
esac

lima_hint() {
  if ! command -v limactl >/dev/null 2>&1; then
    say ""
    say "claude-vm needs Lima 2.0 or later, and limactl is not on your PATH:"
    say "  macOS:  brew install lima"
    say "  Linux:  brew install lima, or the release tarball from https://github.com/lima-vm/lima/releases"
    say "  more:   https://lima-vm.io/docs/installation/"
  fi
}

# claude-vm-claude, claude-vm as the `claude` an Agent SDK runs: a link beside the binary
# (a file of that name that is not a link is the user's and stays).
link_drop_in() {
  if [ ! -e "$1/claude-vm-claude" ] || [ -L "$1/claude-vm-claude" ]; then
    ln -sfn claude-vm "$1/claude-vm-claude"
  fi
}

path_hint() {
  case ":${PATH:-}:" in
    *":$1:"*) ;;
    *)
      say ""
      say "$1 is not on your PATH; add it, e.g. in ~/.profile:"
      say "  export PATH=\"$1:\$PATH\""
      ;;
  esac
}

# From a source checkout: build with cargo.
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
if [ -f "$here/Cargo.toml" ] && grep -q '^name = "claude-vm"' "$here/Cargo.toml"; then
  [ -z "$version" ] || die "--version installs a release; this is a source checkout" \
    "check out the release's tag (git checkout v$version) and run ./install.sh again"
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build from source" "install Rust: https://rustup.rs"
  say "building claude-vm from $here"
  set -- --locked --path "$here"
  [ -z "$debug" ] || set -- "$@" --debug
  if [ -n "$dir" ]; then
    # cargo installs into ROOT/bin: build into a scratch root, then move the binary.
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    cargo install --root "$root" "$@"
    mkdir -p "$dir"
    dir=$(CDPATH='' cd -- "$dir" && pwd)
    cp "$root/bin/claude-vm" "$dir/.claude-vm.new.$$"
    mv -f "$dir/.claude-vm.new.$$" "$dir/claude-vm"
    link_drop_in "$dir"
    say "installed $dir/claude-vm"
    path_hint "$dir"
  else
    cargo install "$@"
  fi
  lima_hint
  exit 0
fi
[ -z "$debug" ] || die "--debug builds from source" "run ./install.sh in a checkout of claude-vm"

# A release: which build fits this machine?
os=$(uname -s)
arch=$(uname -m)
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  arm64|aarch64) arch=aarch64 ;;
  *) die "no claude-vm release for the $arch processor" "build from source: git clone the repository and run ./install.sh" ;;
esac
case "$os" in
  Linux) target="$arch-unknown-linux-gnu" ;;
  Darwin) target="$arch-apple-darwin" ;;
  *) die "no claude-vm release for $os (Lima runs on macOS and Linux)" "on Windows, run it inside WSL2" ;;
esac
asset="claude-vm-$target.tar.gz"
repo=${CLAUDE_VM_UPDATE_REPO:-claude-vm/claude-vm}
base=${CLAUDE_VM_DOWNLOAD_BASE:-https://github.com/$repo/releases}
base=${base%/}
if [ -n "$version" ]; then
  url="$base/download/v$version/$asset"
else
  url="$base/latest/download/$asset"
fi

if command -v curl >/dev/null 2>&1; then
  fetch() { curl --fail --silent --show-error --location --output "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget --quiet --output-document="$2" "$1"; }
else
  die "curl or wget is needed to download claude-vm" "install curl"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "sha256sum or shasum is needed to check the download" "install coreutils"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading $url"
fetch "$url" "$tmp/$asset" || die "cannot download $url" \
  "check the version (--version) and the network; releases: $base"
fetch "$url.sha256" "$tmp/$asset.sha256" || die "cannot download $url.sha256" \
  "every release carries a .sha256 next to its archive; try again later"
expected=$(cut -d' ' -f1 <"$tmp/$asset.sha256" | tr 'A-F' 'a-f')
actual=$(sha256 "$tmp/$asset")
[ "$expected" = "$actual" ] || die "$asset does not match its checksum (expected $expected, got $actual); nothing was installed" \
  "try again; if it persists, report it"
mkdir "$tmp/unpacked"
tar -xzf "$tmp/$asset" -C "$tmp/unpacked"
[ -f "$tmp/unpacked/claude-vm" ] || die "$asset has no claude-vm at its root" "report it"

dir=${dir:-$HOME/.local/bin}
mkdir -p "$dir"
dir=$(CDPATH='' cd -- "$dir" && pwd)
# Copy next to the target, then rename: a running claude-vm is never half-written.
cp "$tmp/unpacked/claude-vm" "$dir/.claude-vm.new.$$"
chmod 755 "$dir/.claude-vm.new.$$"
mv -f "$dir/.claude-vm.new.$$" "$dir/claude-vm"
link_drop_in "$dir"
say "installed $("$dir/claude-vm" --version 2>/dev/null || echo claude-vm) to $dir/claude-vm"
path_hint "$dir"
lima_hint
