#!/bin/sh
# The whole plexus test suite, on a fresh Debian machine, as root:
#   sudo conformance/test.sh
# Installs what the tests need when it is missing (Debian's CNI plugins, iproute2, unshare),
# then runs every unit, integration and rig test of the workspace (the containerd tier
# included: containerd, runc and buildah are installed too). Tests that need network
# namespaces isolate themselves in a private network + mount namespace (see
# conformance/src/sandbox.rs); nothing touches the host's network.
set -eu
cd "$(dirname "$0")/.."

needs_caller=test.sh
# shellcheck source=needs.sh
. conformance/needs.sh

# The containerd tier (tests/containerd.rs) skips itself where containerd, runc or buildah are
# missing; here they were just installed, so a missing one must fail it instead.
export PLEXUS_REQUIRE_CONTAINERD=1

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    exec cargo test --workspace --no-fail-fast "$@"
fi
