#!/bin/sh
# The plexus demo, on a fresh Debian machine, as root:
#   sudo conformance/demo.sh
# Installs what it needs when missing (Debian's CNI plugins, iproute2, unshare, kubectl), builds
# plexus, then simulates a Kubernetes node in a private network + mount namespace (the host's
# network is not touched): an API stand-in over HTTPS with the example NADs and pods, pods as
# network namespaces, plexus called as a container runtime calls it. It prints every pod's
# interfaces and network-status, deletes everything and shows that nothing is left.
set -eu
cd "$(dirname "$0")/.."

need=""
[ -x /usr/lib/cni/bridge ] || need="$need containernetworking-plugins"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v kubectl >/dev/null 2>&1 || need="$need kubernetes-client"
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "demo.sh: missing packages:$need; run as root (or install them) first" >&2
        exit 1
    fi
    echo "demo.sh: installing$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: run as root: it creates network namespaces (in a private namespace of its own)" >&2
    exit 1
fi

echo "demo.sh: building plexus (cargo build --release)"
cargo build --release --quiet --workspace
exec target/release/plexus-demo "$@"
