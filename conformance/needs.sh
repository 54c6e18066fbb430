# needs.sh: sourced by demo.sh and test.sh (not run on its own). Installs, as root, the Debian
# packages the demo and the tests need when they are missing: the CNI plugins, iproute2 (ip),
# util-linux (unshare), kubernetes-client (kubectl), libc6-dev (glibc's static archive, for
# the static link of the plexus binary, see build.rs, and of the containerd tests' pause
# program), and containerd, runc and buildah (the containerd tier, tests/containerd.rs, and
# deploy/build-image.sh). $needs_caller names the caller.
# shellcheck shell=sh
need=""
[ -x /usr/lib/cni/bridge ] || need="$need containernetworking-plugins"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v kubectl >/dev/null 2>&1 || need="$need kubernetes-client"
command -v containerd >/dev/null 2>&1 || need="$need containerd"
command -v runc >/dev/null 2>&1 || need="$need runc"
command -v buildah >/dev/null 2>&1 || need="$need buildah"
case "$(cc -print-file-name=libc.a 2>/dev/null)" in
    /*) ;;
    *) need="$need libc6-dev" ;;
esac
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "$needs_caller: missing packages:$need; run as root (or install them) first" >&2
        exit 1
    fi
    echo "$needs_caller: installing$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
