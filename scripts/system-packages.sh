#!/usr/bin/env bash
# Installs the Debian packages pyalloc's tests use, when any is missing:
# valgrind; gcc's AddressSanitizer runtime; binutils (nm, readelf); the malloc
# replacements the foreign-allocator runs preload; CPython 3.11's debug build
# (--with-pydebug), which the C programs run against too.
set -euo pipefail

packages=(valgrind libasan8 binutils libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 python3.11-dbg libpython3.11-dbg)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present (${packages[*]})"
    exit 0
fi
echo "system packages: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
