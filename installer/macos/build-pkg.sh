#!/usr/bin/env bash
# Builds ferrovpn-VERSION.pkg on macOS with pkgbuild and productbuild (untested: needs macOS,
# see README.md). Prints the path of the .pkg as its last line.
#
# Installs: /usr/local/bin/ferrovpn, its man page and shell completions, the launchd job
# templates in /usr/local/share/ferrovpn/launchd/, and the directories
# /usr/local/etc/ferrovpn/{client,server} and /usr/local/var/log/ferrovpn. No job is loaded.
#
# Environment: FERROVPN_SIGN_IDENTITY (optional) signs the product archive with
# `productbuild --sign` ("Developer ID Installer: ...").
set -euo pipefail

cd "$(dirname "$0")/../.."

if [ "$(uname -s)" != Darwin ]; then
  echo "build-pkg.sh: pkgbuild and productbuild exist only on macOS" >&2
  exit 1
fi

cargo build --release --locked -p ferrovpn --bin ferrovpn >&2

meta=$(cargo metadata --format-version 1 --no-deps --locked)
target_dir=$(printf '%s' "$meta" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
version=$(printf '%s' "$meta" |
  sed -n 's/.*"name":"ferrovpn","version":"\([^"]*\)".*/\1/p')
test -n "$target_dir" && test -n "$version" ||
  { echo "build-pkg.sh: cannot read the target directory or version from cargo metadata" >&2; exit 1; }
bin="$target_dir/release/ferrovpn"
out="$target_dir/macos-pkg"
root="$out/root"

rm -rf "$out"
install -d -m 755 "$root/usr/local/bin" "$root/usr/local/share/man/man1" \
  "$root/usr/local/share/zsh/site-functions" "$root/usr/local/etc/bash_completion.d" \
  "$root/usr/local/share/fish/vendor_completions.d" "$root/usr/local/share/ferrovpn/launchd" \
  "$root/usr/local/share/doc/ferrovpn" \
  "$root/usr/local/etc/ferrovpn/client" "$root/usr/local/etc/ferrovpn/server" \
  "$root/usr/local/var/log/ferrovpn"
install -m 755 "$bin" "$root/usr/local/bin/ferrovpn"
"$bin" manpage > "$root/usr/local/share/man/man1/ferrovpn.1"
"$bin" completions zsh > "$root/usr/local/share/zsh/site-functions/_ferrovpn"
"$bin" completions bash > "$root/usr/local/etc/bash_completion.d/ferrovpn"
"$bin" completions fish > "$root/usr/local/share/fish/vendor_completions.d/ferrovpn.fish"
install -m 644 installer/macos/org.ferrovpn.client.plist installer/macos/org.ferrovpn.server.plist \
  "$root/usr/local/share/ferrovpn/launchd/"
install -m 644 README.md "$root/usr/local/share/doc/ferrovpn/"

pkgbuild --root "$root" --identifier org.ferrovpn.ferrovpn --version "$version" \
  --install-location / --ownership recommended "$out/ferrovpn-component.pkg" >&2

# (the ${a[@]+...} form: macOS ships bash 3.2, where an empty array trips `set -u`)
sign=()
if [ -n "${FERROVPN_SIGN_IDENTITY:-}" ]; then
  sign=(--sign "$FERROVPN_SIGN_IDENTITY")
fi
productbuild --identifier org.ferrovpn.ferrovpn --version "$version" \
  --package "$out/ferrovpn-component.pkg" ${sign[@]+"${sign[@]}"} "$out/ferrovpn-$version.pkg" >&2
echo "$out/ferrovpn-$version.pkg"
