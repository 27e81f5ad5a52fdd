#!/usr/bin/env bash
# Build the test host images with debootstrap + docker import (no registry is reachable),
# cached by a hash of their recipe: a second run with an unchanged recipe builds nothing.
#
#   tests/images/build.sh [NAME...]     # default: all images; prints "NAME TAG" per image
#
# Images: base (debootstrap bookworm), vast-like (sshd as PID 1), systemd (systemd as PID 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mirror=${VASTLLM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

log() { printf '[images] %s\n' "$*" >&2; }

recipe_hash() {  # hash of the files that make an image, plus its parent's tag
    (cd "$here" && find "$1" -type f -print0 | sort -z | xargs -0 sha256sum; echo "${2:-}"; \
        sha256sum build.sh) | sha256sum | cut -c1-12
}

have() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    local tag=$1 root
    root=$(mktemp -d /var/tmp/vastllm-rootfs.XXXXXX)
    trap 'rm -rf "$root"' RETURN
    log "debootstrap $suite into $root (about a minute)"
    debootstrap --variant=minbase \
        --include="$(grep -v '^#' "$here/base/packages.txt" | paste -sd,)" \
        "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; rm -f "$root.log"; return 1; }
    rm -f "$root.log"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" \
        >"$root/etc/apt/sources.list"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    log "docker import -> $tag"
    tar -C "$root" -c . | docker import - "$tag" >/dev/null
}

build_variant() {
    local name=$1 tag=$2 base=$3
    log "docker build $name -> $tag"
    local out
    out=$(docker build -q --build-arg "BASE=$base" -t "$tag" "$here/$name" 2>&1) \
        || { printf '%s\n' "$out" >&2; return 1; }
}

base_tag="vastllm-test/base:$(recipe_hash base)"
if have "$base_tag"; then log "cached $base_tag"; else build_base "$base_tag"; fi

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(vast-like systemd)
for name in "${names[@]}"; do
    [ -d "$here/$name" ] || { log "no image recipe named $name"; exit 2; }
    tag="vastllm-test/$name:$(recipe_hash "$name" "$base_tag")"
    if have "$tag"; then log "cached $tag"; else build_variant "$name" "$tag" "$base_tag"; fi
    docker tag "$tag" "vastllm-test/$name:latest"
    printf '%s %s\n' "$name" "$tag"
done
