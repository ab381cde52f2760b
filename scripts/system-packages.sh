#!/usr/bin/env bash
# Installs the Debian packages pyalloc's tests use, when any is missing:
# valgrind; gcc's AddressSanitizer runtime; binutils (nm, readelf); the malloc
# replacements the foreign-allocator runs preload.
#
# The malloc replacements are found by what the system has (the dynamic
# linker's cache, else the usual library directories), as the tests find them
# (tests/common/mod.rs, preloaded_allocator): Debian 12 ships
# libtcmalloc-minimal4 and libmimalloc2.0 (libmimalloc.so.2), Debian testing
# libtcmalloc-minimal4t64 and libmimalloc3 (libmimalloc.so.3). When one is
# missing, the first of its packages that apt knows is installed.
set -euo pipefail

# Packages named the same everywhere, checked by their dpkg status.
packages=(valgrind libasan8 binutils)
# CPython 3.11's debug build (--with-pydebug), which the C programs run
# against too: Debian 12's, on the host (Debian testing has no 3.11).
if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    packages+=(python3.11-dbg libpython3.11-dbg)
fi
# "soname[|soname...] package [package...]": a library and the packages that
# may provide it, preferred first.
libraries=(
    "libjemalloc.so.2 libjemalloc2"
    "libtcmalloc_minimal.so.4 libtcmalloc-minimal4t64 libtcmalloc-minimal4"
    "libmimalloc.so.2|libmimalloc.so.3 libmimalloc3 libmimalloc2.0"
)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# The path of a library the system has, by soname; nothing when it has none.
find_library() {
    local soname=$1 dir
    ldconfig -p 2>/dev/null | awk -v so="$soname" '$1 == so { print $NF; exit }' | grep . && return 0
    for dir in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
        if [ -e "$dir/$soname" ]; then
            echo "$dir/$soname"
            return 0
        fi
    done
    return 1
}

has_library() {
    local soname
    local -a sonames
    IFS='|' read -ra sonames <<<"$1"
    for soname in "${sonames[@]}"; do
        find_library "$soname" >/dev/null && return 0
    done
    return 1
}

missing=()
for package in "${packages[@]}"; do
    installed "$package" || missing+=("$package")
done
missing_libraries=()
for entry in "${libraries[@]}"; do
    read -r sonames _ <<<"$entry"
    has_library "$sonames" || missing_libraries+=("$entry")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_libraries[@]} -eq 0 ]; then
    echo "system packages: all present (${packages[*]}; $(for e in "${libraries[@]}"; do
        read -r s _ <<<"$e"
        printf '%s ' "$s"
    done | sed 's/ $//'))"
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
for entry in "${missing_libraries[@]}"; do
    read -r sonames candidates <<<"$entry"
    chosen=""
    for package in $candidates; do
        if apt-cache show "$package" >/dev/null 2>&1; then
            chosen=$package
            break
        fi
    done
    if [ -z "$chosen" ]; then
        echo "system packages: no package provides ${sonames//|/ or } here (tried: $candidates)" >&2
        exit 1
    fi
    missing+=("$chosen")
done
echo "system packages: installing ${missing[*]}"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for entry in "${libraries[@]}"; do
    read -r sonames _ <<<"$entry"
    has_library "$sonames" || {
        echo "system packages: ${sonames//|/ or } still missing after the install" >&2
        exit 1
    }
done
