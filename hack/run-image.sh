#!/usr/bin/env bash
# Runs an image from an OCI image layout tar archive (what hack/image-oci.sh writes) the way a
# container runtime starts it, without one: unpacks the layers in order into a temporary root
# filesystem, then runs the config's Entrypoint with ARGS (else its Cmd) chrooted there, as the
# config's User, with the config's Env only. Needs root (or, as a fallback that runs the process
# as uid 0 of a user namespace, `unshare --map-root-user`); exits 77 when it can do neither.
# Layer whiteouts are not handled (images from hack/image-oci.sh have none); the config's
# WorkingDir must be / (chroot starts there).
# Usage: hack/run-image.sh ARCHIVE [ARGS...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 ARCHIVE [ARGS...]" >&2; exit 2; }
ARCHIVE=$1
shift
[ -f "$ARCHIVE" ] || { echo "run-image.sh: no archive at $ARCHIVE" >&2; exit 1; }
for tool in tar python3 chroot env; do
  command -v "$tool" >/dev/null || { echo "run-image.sh: $tool is needed" >&2; exit 1; }
done
CHROOT=$(command -v chroot)
ENV=$(command -v env)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/layout" "$WORK/rootfs"
tar -xf "$ARCHIVE" -C "$WORK/layout"

# index.json → the manifest (through nested indexes, picking linux/<this machine's arch> when
# there are several) → its layers and config. Writes, NUL-separated: layers (media type, blob
# path per layer), entrypoint (the command line: Entrypoint then ARGS or Cmd), env, and user,
# workdir.
python3 - "$WORK" "$@" <<'PY'
import json, os, platform, sys

work, args = sys.argv[1], sys.argv[2:]
layout = os.path.join(work, "layout")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}.get(platform.machine(), platform.machine())
INDEX = ("application/vnd.oci.image.index.v1+json",
         "application/vnd.docker.distribution.manifest.list.v2+json")

def fail(why):
    sys.exit(f"run-image.sh: {why}")

def blob(digest):
    algorithm, _, hex_ = digest.partition(":")
    path = os.path.join(layout, "blobs", algorithm, hex_)
    if not os.path.isfile(path):
        fail(f"the archive has no blob {digest}")
    return path

def load(digest):
    with open(blob(digest), "rb") as f:
        return json.load(f)

def choose(index):
    manifests = index.get("manifests") or []
    if len(manifests) > 1:
        manifests = [m for m in manifests
                     if m.get("platform", {}).get("architecture") in (None, ARCH)
                     and m.get("platform", {}).get("os") in (None, "linux")]
    if len(manifests) != 1:
        fail(f"expected one manifest (for linux/{ARCH}), found {len(manifests)}")
    return manifests[0]

with open(os.path.join(layout, "index.json")) as f:
    descriptor = choose(json.load(f))
while descriptor.get("mediaType") in INDEX:
    descriptor = choose(load(descriptor["digest"]))
manifest = load(descriptor["digest"])
config = load(manifest["config"]["digest"]).get("config") or {}

def write(name, items):
    with open(os.path.join(work, name), "w") as f:
        f.write("".join(item + "\0" for item in items))

layers = []
for layer in manifest.get("layers", []):
    layers += [layer.get("mediaType", ""), blob(layer["digest"])]
write("layers", layers)
entrypoint = config.get("Entrypoint") or []
command = entrypoint + (args if args else (config.get("Cmd") or []))
if not command:
    fail("the image has no Entrypoint or Cmd and no ARGS were given")
write("command", command)
write("env", config.get("Env") or [])
write("user", [config.get("User") or "0:0", config.get("WorkingDir") or "/"])
PY

mapfile -d '' LAYERS <"$WORK/layers"
mapfile -d '' COMMAND <"$WORK/command"
mapfile -d '' IMAGE_ENV <"$WORK/env"
mapfile -d '' USER_WORKDIR <"$WORK/user"
USER_SPEC=${USER_WORKDIR[0]}
WORKDIR=${USER_WORKDIR[1]}
[ "$WORKDIR" = / ] || { echo "run-image.sh: WorkingDir $WORKDIR is not supported (chroot starts in /)" >&2; exit 1; }

ROOTFS="$WORK/rootfs"
for ((i = 0; i < ${#LAYERS[@]}; i += 2)); do
  case ${LAYERS[i]} in
    *+gzip | *.tar.gzip) tar -xzf "${LAYERS[i + 1]}" -C "$ROOTFS" --numeric-owner ;;
    *+zstd) tar --zstd -xf "${LAYERS[i + 1]}" -C "$ROOTFS" --numeric-owner ;;
    *.tar | *.rootfs.diff.tar) tar -xf "${LAYERS[i + 1]}" -C "$ROOTFS" --numeric-owner ;;
    *) echo "run-image.sh: unsupported layer media type ${LAYERS[i]}" >&2; exit 1 ;;
  esac
done

# User is uid[:gid] or name[:group], names resolved in the image's /etc/passwd and /etc/group
# (chroot --userspec would resolve names on this machine).
lookup() { # FILE NAME → the id of NAME in FILE, or NAME when numeric
  if [[ $2 =~ ^[0-9]+$ ]]; then echo "$2"; return; fi
  local id
  id=$(awk -F: -v n="$2" '$1 == n {print $3; exit}' "$ROOTFS/$1" 2>/dev/null) || true
  [ -n "$id" ] || { echo "run-image.sh: user or group $2 is not in the image's /$1" >&2; exit 1; }
  echo "$id"
}
USER_NAME=${USER_SPEC%%:*}
UID_=$(lookup etc/passwd "$USER_NAME")
if [[ $USER_SPEC == *:* ]]; then
  GID_=$(lookup etc/group "${USER_SPEC#*:}")
else
  GID_=$(awk -F: -v u="$UID_" '$3 == u {print $4; exit}' "$ROOTFS/etc/passwd" 2>/dev/null) || true
  GID_=${GID_:-0}
fi

if [ "$(id -u)" = 0 ]; then
  # No `exec`: the trap removes the root filesystem when the process ends.
  "$ENV" -i "${IMAGE_ENV[@]}" "$CHROOT" --userspec="$UID_:$GID_" --groups="$GID_" "$ROOTFS" "${COMMAND[@]}"
else
  command -v unshare >/dev/null && unshare --map-root-user true 2>/dev/null || {
    echo "run-image.sh: chroot needs root, and unshare --map-root-user does not work here" >&2
    exit 77
  }
  echo "run-image.sh: not root: running in a user namespace as its root (uid 0), not as $USER_SPEC" >&2
  "$ENV" -i "${IMAGE_ENV[@]}" "$(command -v unshare)" --map-root-user "$CHROOT" "$ROOTFS" "${COMMAND[@]}"
fi
