#!/bin/sh
# Builds the plexus image offline from the release binary, with buildah, as root or not:
#   cargo build --release && deploy/build-image.sh [--out FILE] [--tag NAME] [--binary FILE]
# The image is the top-level Containerfile (FROM scratch + the static binary at
# /usr/local/bin/plexus), tagged localhost/plexus:<Cargo's version> by default, and written as
# a docker-archive (default target/plexus-image.tar) that `ctr -n k8s.io images import`,
# `podman load` and `docker load` accept. Nothing is pulled and nothing is left in the
# machine's image store: buildah works in a private store (vfs driver) in a temp dir, so it
# also runs in CI and in sandboxes without overlay mounts. With --push REF the image is also
# pushed (e.g. --push docker://registry.example.com/plexus:0.1.0).
#
# --containerfile FILE and --context DIR build another image the same way (the containerd
# tests' pause image does: conformance/images/build-pause.sh).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
tag="localhost/plexus:$version"
out="$root/target/plexus-image.tar"
binary="$root/target/release/plexus"
containerfile="$root/Containerfile"
context=""
push=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --containerfile) containerfile=$2; shift 2 ;;
        --context) context=$2; shift 2 ;;
        --push) push=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v buildah >/dev/null 2>&1 || {
    echo "build-image.sh: buildah is not installed (apt-get install buildah)" >&2
    exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/plexus-image.XXXXXX")
trap 'buildah $store rm --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT INT TERM
store="--root $work/root --runroot $work/runroot --storage-driver vfs"
# The build pulls nothing (FROM scratch): an accept-all policy keeps buildah from needing the
# machine's /etc/containers/policy.json.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$work/policy.json"
if [ -z "$context" ]; then
    # Only the binary goes into the build context, not the whole (large) target directory.
    [ -x "$binary" ] || {
        echo "build-image.sh: $binary is missing: run cargo build --release first" >&2
        exit 1
    }
    context="$work/context"
    mkdir -p "$context/target/release"
    cp "$binary" "$context/target/release/plexus"
fi
mkdir -p "$(dirname "$out")"
rm -f "$out"
# shellcheck disable=SC2086 # $store is a list of flags
buildah $store bud --quiet --signature-policy "$work/policy.json" --pull=false \
    --isolation chroot -f "$containerfile" -t "$tag" "$context" >/dev/null
# shellcheck disable=SC2086
buildah $store push --quiet --signature-policy "$work/policy.json" "$tag" "docker-archive:$out:$tag"
if [ -n "$push" ]; then
    # shellcheck disable=SC2086
    buildah $store push --signature-policy "$work/policy.json" "$tag" "$push"
fi
echo "build-image.sh: $tag -> $out"
