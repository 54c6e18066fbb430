#!/bin/sh
# Builds the pod sandbox ("pause") image of the containerd tests offline:
#   conformance/images/build-pause.sh OUT.tar
# pause.c compiled static (gcc -static; glibc's static archive comes with libc6-dev, which
# needs.sh installs), in a FROM scratch image tagged localhost/plexus-test-pause:1, written as a
# docker-archive for `ctr images import`. The containerd tests build it themselves (see
# conformance/src/containerd.rs); this script is what they run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-pause.sh OUT.tar}
work=$(mktemp -d "${TMPDIR:-/tmp}/plexus-pause.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
${CC:-cc} -static -Os -s -o "$work/pause" "$here/pause.c"
cp "$here/Containerfile.pause" "$work/Containerfile"
exec "$here/../../deploy/build-image.sh" --containerfile "$work/Containerfile" \
    --context "$work" --tag localhost/plexus-test-pause:1 --out "$out"
