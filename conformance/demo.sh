#!/bin/sh
# The plexus demo, on a fresh Debian machine, as root:
#   sudo conformance/demo.sh
# Installs what it needs when missing (Debian's CNI plugins, iproute2, unshare, kubectl), builds
# plexus, then simulates a Kubernetes node in a private network + mount namespace (the host's
# network is not touched): an API stand-in over HTTPS with the example NADs and pods, pods as
# network namespaces, plexus called as a container runtime calls it. It prints every pod's
# interfaces and network-status, deletes everything and shows that nothing is left.
#   sudo conformance/demo.sh --containerd
# makes the same pods through a real containerd's CRI instead, as a kubelet does (containerd,
# runc and buildah are installed when missing; nothing is pulled: the pause image is built
# locally).
set -eu
cd "$(dirname "$0")/.."

needs_caller=demo.sh
# shellcheck source=needs.sh
. conformance/needs.sh
if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: run as root: it creates network namespaces (in a private namespace of its own)" >&2
    exit 1
fi

echo "demo.sh: building plexus (cargo build --release)"
cargo build --release --quiet --workspace
exec target/release/plexus-demo "$@"
