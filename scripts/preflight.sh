#!/usr/bin/env bash
# The last step of `make setup`: every command that the demo, the tests and bench/ exec on this
# machine is here, checked against scripts/debian-packages.txt, before any test starts. Prints the
# Debian packages to install for whatever is missing and exits 1.
set -euo pipefail
list="$(dirname "$0")/debian-packages.txt"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
missing=() packages=()
while IFS= read -r line; do
    case $line in '#'*|'') continue ;; esac
    package=${line%%:*}
    for cmd in ${line#*:}; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            missing+=("$cmd")
            [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
        fi
    done
done <"$list"
if [ ${#missing[@]} -gt 0 ]; then
    printf '[preflight] missing commands: %s\n' "${missing[*]}" >&2
    printf '[preflight] install them with: apt-get install %s (or run scripts/host-setup.sh)\n' \
        "${packages[*]}" >&2
    exit 1
fi
printf '[preflight] %d commands from %s present\n' \
    "$(grep -v '^#' "$list" | cut -d: -f2 | wc -w)" "${list#./}" >&2
