#!/bin/sh
# The whole plexus test suite, on a fresh Debian machine, as root:
#   sudo conformance/test.sh
# Installs what the tests need when it is missing (Debian's CNI plugins, iproute2, unshare),
# then runs every unit, integration and rig test of the workspace. Tests that need network
# namespaces isolate themselves in a private network + mount namespace (see
# conformance/src/sandbox.rs); nothing touches the host's network.
set -eu
cd "$(dirname "$0")/.."

need=""
[ -x /usr/lib/cni/bridge ] || need="$need containernetworking-plugins"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v kubectl >/dev/null 2>&1 || need="$need kubernetes-client"
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh: missing packages:$need; run as root (or install them) first" >&2
        exit 1
    fi
    echo "test.sh: installing$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    exec cargo test --workspace --no-fail-fast "$@"
fi
