#!/usr/bin/env bash
# Installs what Aether needs on a Debian 12 machine, only where missing:
#   - Debian packages (as root, through apt-get): the OCI runtime and job monitor, a C++ toolchain for
#     better-sqlite3, and what the tests use
#     to prove other-language clients work (python3-grpcio, protoc with the gRPC plugin), and what checks
#     the deploy files (systemd-analyze from systemd, lintian);
#   - npm packages, from the lockfile, when node_modules is absent or older than package-lock.json.
# Usage: ensure-deps.sh [runtime|test]   (test adds the test-only packages)
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${1:-runtime}

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "Aether needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# runc + conmon run jobs; g++, make and python3 build better-sqlite3 (no prebuilt binary is reachable).
apt_packages=(runc conmon g++ make python3)
if [ "$profile" = test ]; then
  apt_packages+=(python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc util-linux lintian systemd)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` rather than `npm ci`: npm 11 leaves other platforms' optional binaries (swc, buf) out
  # of the lockfile and then `npm ci` refuses it as out of sync. The lockfile still pins every version.
  echo "==> installing npm packages"
  # onnxruntime-node's install script downloads CUDA libraries; its CPU binaries are in the package.
  export ONNXRUNTIME_NODE_INSTALL=skip
  npm install --no-audit --no-fund --loglevel=error
fi
