#!/usr/bin/env bash
# Builds the Aether Debian package: aether_<version>_amd64.deb (version from the root package.json).
#
#   bash tools/deb/build.sh [--out DIR] [--skip-build] [--deploy DIR]
#
#   --out DIR      where the .deb goes (default: dist/deb)
#   --skip-build   use the dist/ folders already built (default: run the nx build first)
#   --deploy DIR   where units, sysusers/tmpfiles, default configs, policy and playbooks are read from
#                  (default: deploy/; the maintainer files always come from deploy/debian)
#
# Debian's own low-level tool, dpkg-deb, assembles the package from a staged tree. debhelper would add
# a debian/rules + source-package layer for no gain: nothing here is compiled at package time (the one
# native addon, better-sqlite3, is already built from source by `npm ci` for this Debian 12 amd64 +
# Node 20 target, and its binary is copied).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/dist/deb"
DEPLOY="$ROOT/deploy"
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    --deploy) DEPLOY="$2"; shift 2 ;;
    --deploy=*) DEPLOY="${1#--deploy=}"; shift ;;
    --skip-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DEPLOY="$(cd "$DEPLOY" && pwd)"
DEBIAN_SRC="$ROOT/deploy/debian"

cd "$ROOT"
VERSION="$(node -p 'require("./package.json").version')"
ARCH="$(dpkg --print-architecture)"
[[ "$ARCH" == amd64 ]] || echo "build.sh: warning: building on $ARCH; the native addon is for this host" >&2

# Workspace packages that ship. Every lib is a runtime dependency of some app (see the apps'
# package.json); tools/* (bench, e2e, ...) are not shipped.
APPS=(aetherd aurorad cfcd cli)
LIBS=()
for d in libs/*/; do LIBS+=("$(basename "$d")"); done

missing=()
for f in systemd/aetherd.service systemd/aurorad.service systemd/cfcd.service \
  sysusers.d/aether.conf tmpfiles.d/aether.conf etc/aetherd.yaml etc/aurorad.yaml etc/cfcd.yaml; do
  [[ -f "$DEPLOY/$f" ]] || missing+=("$DEPLOY/$f")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  printf 'build.sh: missing system file: %s\n' "${missing[@]}" >&2
  exit 1
fi

if [[ $BUILD == 1 ]]; then
  echo "==> building the workspace"
  NX_DAEMON=false npx nx run-many -t build --skip-sync
fi
for p in "${APPS[@]/#/apps/}" "${LIBS[@]/#/libs/}"; do
  [[ -f "$p/dist/index.js" || -f "$p/dist/main.js" ]] || { echo "build.sh: $p/dist is not built" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/aether-deb.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
PKG="$WORK/aether_${VERSION}_${ARCH}"
LIB="$PKG/usr/lib/aether"
mkdir -p "$LIB/apps" "$LIB/libs" "$LIB/node_modules/@aether"

echo "==> staging /usr/lib/aether"
# Each workspace package: package.json + dist/ (no type declarations, no build info).
stage_ws() {
  local src="$1" dst="$LIB/$1"
  mkdir -p "$dst"
  cp "$src/package.json" "$dst/"
  (cd "$src" && tar -cf - --exclude='*.d.ts' --exclude='*.d.ts.map' --exclude='*.tsbuildinfo' \
    --exclude='*.spec.js' --exclude='*.spec.js.map' --exclude='__tests__' dist) | (cd "$dst" && tar -xf -)
  ln -s "../../$1" "$LIB/node_modules/@aether/$(basename "$1")"
}
for a in "${APPS[@]}"; do stage_ws "apps/$a"; done
for l in "${LIBS[@]}"; do stage_ws "libs/$l"; done
# libs/proto/src/descriptors.ts reads ../descriptors/aether.binpb relative to dist/.
cp -r libs/proto/descriptors "$LIB/libs/proto/"

# A root package.json naming only the shipped workspaces (documentation for whoever looks; nothing
# reads it at run time).
node -e '
  const p = require("./package.json");
  const ws = process.argv.slice(1);
  const out = { name: p.name, version: p.version, private: true, description: p.description,
    license: p.license, engines: p.engines, workspaces: ws, dependencies: p.dependencies };
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
' "${APPS[@]/#/apps/}" "${LIBS[@]/#/libs/}" > "$LIB/package.json"

# Production dependencies: exactly the tree npm resolved for the shipped workspaces from the lockfile
# (`npm ls --omit=dev`), copied from the installed node_modules. That reuses the better-sqlite3
# addon that `npm ci` compiled from source for this Debian 12 amd64 + Node 20 host, which is the target.
echo "==> staging production node_modules"
WS_ARGS=()
for a in "${APPS[@]}"; do WS_ARGS+=(-w "apps/$a"); done
# A dependency whose version differs from the hoisted one lies in its workspace's own node_modules
# (apps/cfcd/node_modules/ajv): it is staged at the same place.
npm ls --omit=dev --all --parseable "${WS_ARGS[@]}" 2>/dev/null | sed "s|^$ROOT/||" \
  | grep -E '^((apps|libs)/[^/]+/)?node_modules/' \
  | grep -v '^node_modules/@aether/' | sort -u > "$WORK/prod-deps.txt"
while read -r dep; do
  mkdir -p "$LIB/$dep"
  (cd "$dep" && tar -cf - --exclude=./node_modules .) | (cd "$LIB/$dep" && tar -xf -)
done < "$WORK/prod-deps.txt"
echo "    $(wc -l < "$WORK/prod-deps.txt") packages"

# Trim what is never loaded at run time.
NM="$LIB/node_modules"
rm -rf "$NM/@types" "$NM/undici-types"        # type declarations only (pulled in by protobufjs)
BS="$NM/better-sqlite3"
[[ -f "$BS/build/Release/better_sqlite3.node" ]] || { echo "build.sh: better-sqlite3 addon not built" >&2; exit 1; }
mv "$BS/build/Release/better_sqlite3.node" "$WORK/better_sqlite3.node"
rm -rf "$BS/build" "$BS/deps" "$BS/src" "$BS/binding.gyp"
mkdir -p "$BS/build/Release"
mv "$WORK/better_sqlite3.node" "$BS/build/Release/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$BS/build/Release/better_sqlite3.node"
# onnxruntime-node ships prebuilt binaries for every platform: keep this one's only, stripped.
ORT="$NM/onnxruntime-node/bin"
if [[ -d "$ORT" ]]; then
  ort_arch=$(case "$ARCH" in amd64) echo x64 ;; arm64) echo arm64 ;; *) echo "$ARCH" ;; esac)
  for napi in "$ORT"/napi-v*; do
    find "$napi" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
    find "$napi/linux" -mindepth 1 -maxdepth 1 ! -name "$ort_arch" -exec rm -rf {} +
  done
  find "$ORT" -type f \( -name '*.node' -o -name '*.so*' \) -exec strip --strip-unneeded \
    --remove-section=.comment --remove-section=.note {} +
fi
NMS=("$NM")
for d in "$LIB"/apps/*/node_modules "$LIB"/libs/*/node_modules; do [[ -d "$d" ]] && NMS+=("$d"); done
find "${NMS[@]}" -depth \( -name '.github' -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' \
  -o -name '.editorconfig' -o -name '.prettierrc*' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
  -o -name '*.d.ts.map' -o -name '.package-lock.json' -o -name '.bin' \) -exec rm -rf {} +
# Package docs, tests and tooling (licences are kept); lintian flags them outside /usr/share/doc.
for pkgdir in $(sed "s|^|$LIB/|" "$WORK/prod-deps.txt"); do
  [[ -d "$pkgdir" ]] || continue
  rm -rf "$pkgdir"/{test,tests,__tests__,bench,benchmarks,benchmark,example,examples,docs,doc,.husky,.github}
  rm -f "$pkgdir"/*.html "$pkgdir"/*.sh "$pkgdir"/.gitattributes "$pkgdir"/.gitignore
done
find "$NM" -type f \( -iname '*.md' -o -iname '*.markdown' -o -iname 'CHANGELOG*' -o -iname 'HISTORY*' \) \
  ! -iname 'LICEN[CS]E*' ! -iname 'COPYING*' -delete
find "$NM" -depth -type d -empty -delete

echo "==> staging system files"
install -D -m 0755 /dev/stdin "$PKG/usr/bin/aether" <<'SH'
#!/bin/sh
exec /usr/bin/node /usr/lib/aether/apps/cli/dist/main.js "$@"
SH
for u in aetherd aurorad cfcd; do
  install -D -m 0644 "$DEPLOY/systemd/$u.service" "$PKG/lib/systemd/system/$u.service"
done
for extra in "$DEPLOY"/systemd/*.socket; do
  [[ -f "$extra" ]] && install -D -m 0644 "$extra" "$PKG/lib/systemd/system/$(basename "$extra")"
done
install -D -m 0644 "$DEPLOY/sysusers.d/aether.conf" "$PKG/usr/lib/sysusers.d/aether.conf"
install -D -m 0644 "$DEPLOY/tmpfiles.d/aether.conf" "$PKG/usr/lib/tmpfiles.d/aether.conf"
for c in aetherd aurorad cfcd; do
  install -D -m 0644 "$DEPLOY/etc/$c.yaml" "$PKG/etc/aether/$c.yaml"
done
mkdir -p "$PKG/etc/aether/policy" "$PKG/etc/aether/aurora/playbooks"
for f in "$DEPLOY"/policy/*; do install -m 0644 "$f" "$PKG/etc/aether/policy/"; done
for f in "$DEPLOY"/aurora/playbooks/*; do install -m 0644 "$f" "$PKG/etc/aether/aurora/playbooks/"; done

# onnxruntime's library is upstream's prebuilt one, which links its own copies of curl and mbedtls (for
# its model hub client, which cfcd never calls); Debian's would need a rebuild of onnxruntime.
install -D -m 0644 /dev/stdin "$PKG/usr/share/lintian/overrides/aether" <<'OVR'
aether: embedded-library curl [usr/lib/aether/node_modules/onnxruntime-node/bin/napi-v6/linux/*/libonnxruntime.so.1]
aether: embedded-library mbedtls [usr/lib/aether/node_modules/onnxruntime-node/bin/napi-v6/linux/*/libonnxruntime.so.1]
OVR

DOC="$PKG/usr/share/doc/aether"
install -D -m 0644 "$DEBIAN_SRC/copyright" "$DOC/copyright"
gzip -9n < "$DEBIAN_SRC/changelog" > "$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"
# Man page from the CLI's own --help (one page, every command's help in order).
mkdir -p "$PKG/usr/share/man/man1" "$PKG/usr/share/man/man8"
bash "$ROOT/tools/deb/manpage.sh" "$LIB" "$VERSION" "$PKG/usr/share/man"

echo "==> control files"
mkdir -p "$PKG/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$DEBIAN_SRC/$s" "$PKG/DEBIAN/$s"; done
(cd "$PKG" && find etc -type f | sort | sed 's|^|/|') > "$PKG/DEBIAN/conffiles"
chmod 0644 "$PKG/DEBIAN/conffiles"

# Normalise permissions: directories 0755, files 0644, except the wrapper and maintainer scripts.
find "$PKG" -path "$PKG/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
find "$PKG" -path "$PKG/DEBIAN" -prune -o -type f -exec chmod 0644 {} +
chmod 0755 "$PKG/usr/bin/aether"
# Scripts with a #! line (the daemons' and CLI's main.js, npm packages' bin scripts) stay executable.
find "$PKG/usr/lib/aether" -type f \( -name '*.js' -o -name '*.mjs' -o -name '*.cjs' \) -print0 \
  | xargs -0 grep -lZ -m1 '^#!' 2>/dev/null | while IFS= read -r -d '' f; do
      [[ "$(head -c2 "$f")" == '#!' ]] && chmod 0755 "$f"
    done

INSTALLED_SIZE="$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
  "$DEBIAN_SRC/control.in" > "$PKG/DEBIAN/control"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's|  \./|  |') \
  > "$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/md5sums"

DEB="$OUT/aether_${VERSION}_${ARCH}.deb"
echo "==> dpkg-deb --build"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}" \
  dpkg-deb --build --root-owner-group -Zxz "$PKG" "$DEB" >/dev/null
echo "$DEB ($(du -h "$DEB" | cut -f1), installed $((INSTALLED_SIZE / 1024)) MiB)"
