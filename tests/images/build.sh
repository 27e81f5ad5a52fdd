#!/usr/bin/env bash
# Build the test host images with debootstrap + docker import (no registry is reachable),
# cached by a hash of their recipe: a second run with an unchanged recipe builds nothing.
#
#   tests/images/build.sh [NAME...]     # default: all images; prints "NAME TAG" per image
#
# Images: base (debootstrap bookworm), vast-like (sshd as PID 1), systemd (systemd as PID 1),
# vast-base-like (vast-like plus a replica of the Vast.ai base image's supervisord and boot).
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
    log "debootstrap $suite into $root (about a minute)"
    debootstrap --variant=minbase \
        --include="$(grep -v '^#' "$here/base/packages.txt" | paste -sd,)" \
        "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; rm -rf "$root.log" "$root"; return 1; }
    rm -f "$root.log"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" \
        >"$root/etc/apt/sources.list"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    log "docker import -> $tag"
    tar -C "$root" -c . | docker import - "$tag" >/dev/null
    rm -rf "$root"
}

build_variant() {
    local name=$1 tag=$2 base=$3 ctx out
    log "docker build $name -> $tag"
    ctx=$(mktemp -d /var/tmp/vastllm-image.XXXXXX)
    cp -a "$here/$name/." "$ctx/"
    # pinned wheels (with hashes) the image installs without an index, fetched on this machine
    if [ -f "$here/$name/wheels.txt" ]; then
        local cache=${VASTLLM_CACHE:-/var/cache/vastllm}/image-wheels/$(sha256sum "$here/$name/wheels.txt" | cut -c1-12)
        if [ ! -f "$cache/.complete" ]; then
            mkdir -p "$cache"
            python3 -m pip download -q --no-deps --require-hashes -r "$here/$name/wheels.txt" -d "$cache" \
                2>&1 | grep -v '^WARNING: Location' >&2 || true
            ls "$cache"/*.whl >/dev/null 2>&1 \
                || { log "could not download the wheels of $name"; rm -rf "$ctx"; return 1; }
            touch "$cache/.complete"
        fi
        mkdir -p "$ctx/wheels" && cp "$cache"/*.whl "$ctx/wheels/"
    fi
    out=$(docker build -q --build-arg "BASE=$base" -t "$tag" "$ctx" 2>&1) \
        || { printf '%s\n' "$out" >&2; rm -rf "$ctx"; return 1; }
    rm -rf "$ctx"
}

base_tag="vastllm-test/base:$(recipe_hash base)"
if have "$base_tag"; then log "cached $base_tag"; else build_base "$base_tag"; fi

# a recipe with a file "parent" builds FROM that variant (e.g. vast-base-like FROM vast-like)
variant_tag() {
    local name=$1 parent_tag=$base_tag
    if [ -f "$here/$name/parent" ]; then
        parent_tag=$(variant_tag "$(cat "$here/$name/parent")") || return 1
    fi
    local tag="vastllm-test/$name:$(recipe_hash "$name" "$parent_tag")"
    if have "$tag"; then log "cached $tag"; else build_variant "$name" "$tag" "$parent_tag" || return 1; fi
    docker tag "$tag" "vastllm-test/$name:latest"
    printf '%s\n' "$tag"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(vast-like systemd vast-base-like)
for name in "${names[@]}"; do
    [ -d "$here/$name" ] || { log "no image recipe named $name"; exit 2; }
    tag=$(variant_tag "$name")
    printf '%s %s\n' "$name" "$tag"
done
