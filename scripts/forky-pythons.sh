#!/usr/bin/env bash
# forky-pythons.sh: CPython 3.14 and 3.15 on a Debian 12 (bookworm) x86-64
# machine, as root, with no network but the package registries.
#
# Why a chroot: Debian testing ("forky") packages both interpreters, but its
# binaries need glibc >= 2.38 (bookworm has 2.36), and Debian's source
# packages cannot be fetched here. So this makes a forky root file system
# (debootstrap, minbase) with the interpreters, their headers and venv, a C
# toolchain, git, valgrind and the libraries pyalloc's C tests preload, and
# runs commands inside it with chroot, each in a private mount namespace:
# nothing stays mounted once a command ends, and runs in parallel do not
# disturb one another.
#
# Usage (as root):
#   forky-pythons.sh [setup]   make or update the root (idempotent: a second
#                              run only checks it), then print where the
#                              interpreters are. Each step prints its
#                              wall-clock time; the detailed output goes to
#                              the log (FORKY_LOG), whose tail is shown on a
#                              failure.
#   forky-pythons.sh run [-b HOST[:INSIDE]]... [-C DIR] [-e NAME=VALUE]... [--] CMD [ARG]...
#                              run CMD in the root. -b binds a host directory
#                              (at the same path inside unless INSIDE is
#                              given), -C is the working directory inside
#                              (default: the first -b's, else /root), -e sets
#                              a variable. Exits with CMD's status.
#   forky-pythons.sh shell [-b ...] [-C DIR]   an interactive bash there
#   forky-pythons.sh where     print the interpreters and toolchain (no change)
#   forky-pythons.sh ready     exit 0 when the root exists and holds every
#                              package setup installs (read from the root's
#                              dpkg database: no chroot, no lock, no change)
#
# pyalloc's scripts/test.sh runs its 3.14 and 3.15 checks this way (setting
# the root up when `ready` says no), binding the checkout at its own path;
# each interpreter builds in its own target directory (target/py314,
# target/py315), never in one the host's glibc builds in.
#
# Example (never bind a checkout you must not write to: bind a clone):
#   git clone /path/to/pyalloc /tmp/p314/src
#   forky-pythons.sh run -b /tmp/p314/src -- bash -c \
#     'python3.14 -m venv .venv && .venv/bin/pip install . && .venv/bin/python -m pyalloc'
#   forky-pythons.sh run -b /tmp/p314/src -e PYO3_PYTHON=/usr/bin/python3.14 -- cargo test
#
# Environment:
#   FORKY_ROOT      where the root is made (default /opt/forky)
#   FORKY_MIRROR    Debian mirror (default: the first main-archive URI in the
#                   host's own apt sources)
#   FORKY_RUST      "host": bind the host's rustup toolchain read-only (the
#                   default when ~/.rustup and ~/.cargo/bin/cargo exist: host
#                   binaries run on forky's newer glibc); "debian": install
#                   forky's rustc and cargo packages into the root instead
#   FORKY_EXTRA_PACKAGES   more forky packages to install (space-separated)
#   FORKY_MINIMAL   1: a root to build in only (scripts/cross-targets.sh's):
#                   no interpreters, no test packages, no valgrind; the base
#                   tools, FORKY_EXTRA_PACKAGES and (debian) rustc and cargo
#   FORKY_LOG       the detailed log (default /var/log/forky-pythons.log)
#
# Inside the root: HOME=/root, CARGO_HOME=/root/.cargo (the root's own crate
# cache; the host's cargo config, if any, is copied in), LANG=C.UTF-8. Passed
# through from the caller: PYO3_*, PYALLOC_*, CARGO_* (not CARGO_HOME), RUST*
# (not RUSTUP_HOME), PIP_* (not PIP_FIND_LINKS: a host path), PYTHONMALLOC,
# PYTHONFAULTHANDLER, PYTHONDEVMODE, PYTHONUNBUFFERED, PYTHONWARNINGS,
# PYTHONHASHSEED, ASAN_OPTIONS, the proxy variables, TERM and CI; anything
# else with -e. The host's extra CA certificates
# (/usr/local/share/ca-certificates) and /etc/pip.conf are copied in, so that
# pip and cargo trust the same TLS as on the host.
#
# Nothing here touches the host's apt sources or lists; on the host it only
# installs debootstrap (and its dependencies) when missing.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=${FORKY_ROOT:-/opt/forky}
ROOT=${ROOT%/}
# The Debian mirror the host's apt already uses (deb822 .sources or a classic list).
host_mirror() {
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
        | grep -v -- '-security' | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//' | awk '{print $1}' | head -n 1)
    [ -n "$uri" ] || { echo "forky-pythons: no Debian mirror in the host's apt sources; set FORKY_MIRROR" >&2; exit 1; }
    echo "${uri%/}"
}
MIRROR=${FORKY_MIRROR:-$(host_mirror)}
SUITE=forky
LOG=${FORKY_LOG:-/var/log/forky-pythons.log}
# One lock per root: a setup excludes runs of the same root, not of others.
LOCK=/run/lock/forky-pythons${ROOT//\//-}.lock
MARKER=etc/forky-pythons.bootstrapped
HOST_RUSTUP=${RUSTUP_HOME:-$HOME/.rustup}
HOST_CARGO=${CARGO_HOME:-$HOME/.cargo}

# The interpreters: each minor's packages are installed when forky has them
# (a warning names any that is missing); at least one must be.
PYTHONS=(3.14 3.15)
# Build and debugging tools besides the interpreters.
BASE_PACKAGES=(ca-certificates gcc make pkg-config git valgrind)
# pyalloc's scripts/system-packages.sh list, under forky's names: bookworm's
# libtcmalloc-minimal4 is libtcmalloc-minimal4t64 there, and libmimalloc2.0
# is gone (libmimalloc3, whose library is libmimalloc.so.3). pyalloc's tests
# and scripts/system-packages.sh find each library by its soname, whichever
# package provides it.
TEST_PACKAGES=(libasan8 binutils libjemalloc2 libtcmalloc-minimal4t64 libmimalloc3)
if [ "${FORKY_MINIMAL:-0}" = 1 ]; then
    PYTHONS=()
    BASE_PACKAGES=(ca-certificates gcc make pkg-config git)
    TEST_PACKAGES=()
fi

die() {
    echo "forky-pythons: error: $*" >&2
    exit 1
}
say() { echo "forky-pythons: $*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# step LABEL FUNCTION [ARG]...: runs one step (errexit on, in a subshell: bash
# ignores errexit inside a condition, hence no `if` around it), prints its
# wall-clock time, and stops the script with the log's tail if it fails.
step() {
    local label=$1 start rc
    shift
    start=$(now)
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        echo "forky-pythons: --- last lines of $LOG" >&2
        tail -n 40 "$LOG" >&2 || true
        die "step '$label' failed (exit $rc); the full output is in $LOG"
    fi
    printf 'forky-pythons: %-58s %7s s\n' "$label" "$(elapsed "$start")"
}

# "host" or "debian": where the root's cargo and rustc come from.
rust_mode() {
    case "${FORKY_RUST:-}" in
        debian) echo debian ;;
        host)
            if [ ! -x "$HOST_CARGO/bin/cargo" ] || [ ! -d "$HOST_RUSTUP/toolchains" ]; then
                die "FORKY_RUST=host, but there is no rustup toolchain at $HOST_RUSTUP with $HOST_CARGO/bin/cargo"
            fi
            echo host
            ;;
        "")
            if [ -x "$HOST_CARGO/bin/cargo" ] && [ -n "$(ls -A "$HOST_RUSTUP/toolchains" 2>/dev/null)" ]; then
                echo host
            else
                echo debian
            fi
            ;;
        *) die "FORKY_RUST must be host or debian, not '$FORKY_RUST'" ;;
    esac
}

# ---------------------------------------------------------------------------
# Running inside the root.

# Called by in_root through unshare, in a private mount namespace: mounts
# what a command needs, then chroots. Everything mounted here disappears
# with the namespace when the command ends.
inner() {
    local cwd=$FORKY_INNER_CWD host inside spec
    local -a env_list=() bind_list=()
    mount -t proc proc "$ROOT/proc"
    mount --rbind /sys "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    if [ -e /etc/resolv.conf ]; then
        if [ ! -f "$ROOT/etc/resolv.conf" ] || [ -L "$ROOT/etc/resolv.conf" ]; then
            rm -f "$ROOT/etc/resolv.conf"
            : >"$ROOT/etc/resolv.conf"
        fi
        mount --bind "$(readlink -f /etc/resolv.conf)" "$ROOT/etc/resolv.conf"
    fi
    if [ "$(rust_mode)" = host ]; then
        mkdir -p "$ROOT$HOST_RUSTUP" "$ROOT/root/.cargo/bin"
        mount --bind -o ro "$HOST_RUSTUP" "$ROOT$HOST_RUSTUP"
        mount --bind -o ro "$HOST_CARGO/bin" "$ROOT/root/.cargo/bin"
        env_list+=("RUSTUP_HOME=$HOST_RUSTUP")
    fi
    if [ -n "${FORKY_INNER_BINDS:-}" ]; then
        mapfile -t bind_list <<<"$FORKY_INNER_BINDS"
        for spec in "${bind_list[@]}"; do
            host=${spec%%:*}
            inside=${spec#*:}
            mkdir -p "$ROOT$inside"
            mount --bind "$host" "$ROOT$inside"
        done
    fi
    env_list+=(
        HOME=/root
        PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        LANG=C.UTF-8
        CARGO_HOME=/root/.cargo
        "TERM=${TERM:-dumb}"
    )
    if [ -n "${FORKY_INNER_ENV:-}" ]; then
        mapfile -t -O "${#env_list[@]}" env_list <<<"$FORKY_INNER_ENV"
    fi
    # shellcheck disable=SC2016
    exec chroot "$ROOT" /usr/bin/env -i "${env_list[@]}" \
        /bin/bash -c 'cd "$1" || exit 125; shift; exec "$@"' forky-run "$cwd" "$@"
}

# The caller's variables that travel into the root (see the header).
passed_env() {
    local name
    while IFS= read -r name; do
        case "$name" in
            CARGO_HOME | RUSTUP_HOME | PIP_FIND_LINKS) ;;
            PYO3_* | PYALLOC_* | CARGO_* | RUST* | PIP_* | ASAN_OPTIONS | CI | \
                PYTHONMALLOC | PYTHONFAULTHANDLER | PYTHONDEVMODE | PYTHONUNBUFFERED | \
                PYTHONWARNINGS | PYTHONHASHSEED | \
                http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY)
                printf '%s=%s\n' "$name" "${!name}"
                ;;
        esac
    done < <(compgen -e)
}

# in_root BINDS CWD ENV CMD...: runs CMD in the root (BINDS and ENV are
# newline-separated lists, possibly empty).
in_root() {
    local binds=$1 cwd=$2 envs=$3
    shift 3
    FORKY_INNER_BINDS=$binds FORKY_INNER_CWD=$cwd FORKY_INNER_ENV=$envs \
        unshare --mount --propagation private -- "$SELF" __inner "$@"
}

# A setup command in the root: no binds, in /root, non-interactive apt.
root_do() {
    in_root "" /root "DEBIAN_FRONTEND=noninteractive" "$@"
}

# ---------------------------------------------------------------------------
# Setup steps.

check_host() {
    [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, mount and chroot need it)"
    [ "$(uname -m)" = x86_64 ] || die "x86-64 only (this is $(uname -m))"
    [ -r /etc/debian_version ] || die "not a Debian system (no /etc/debian_version)"
    local tool
    for tool in apt-get dpkg chroot unshare mount flock awk; do
        command -v "$tool" >/dev/null || die "$tool is missing on the host"
    done
    unshare --mount --propagation private true ||
        die "cannot make a mount namespace (unshare --mount): this needs CAP_SYS_ADMIN"
    if ! grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then
        say "warning: the host is not Debian 12 (bookworm); going on"
    fi
    # shellcheck disable=SC1091
    say "host: $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -n 1), $(nproc) cores"
    say "root: $ROOT; mirror: $MIRROR; rust: $(rust_mode); log: $LOG"
}

install_debootstrap() {
    if command -v debootstrap >/dev/null; then
        echo "debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null) already installed" >>"$LOG"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine's apt lists may be missing or stale: update on failure.
    apt-get install -y --no-install-recommends debootstrap >>"$LOG" 2>&1 || {
        apt-get update >>"$LOG" 2>&1 &&
            apt-get install -y --no-install-recommends debootstrap >>"$LOG" 2>&1
    } || die "apt-get install debootstrap failed on the host"
}

# debootstrap into $ROOT.partial, then rename: an interrupted run never
# leaves a half-made root at $ROOT, and the next run starts that over.
bootstrap() {
    if [ -e "$ROOT/$MARKER" ]; then
        echo "$ROOT already bootstrapped" >>"$LOG"
        return 0
    fi
    if [ -d "$ROOT" ]; then
        if [ -z "$(ls -A "$ROOT")" ]; then
            rmdir "$ROOT"
        elif grep -qs "^VERSION_CODENAME=$SUITE" "$ROOT/etc/os-release" &&
            grep -qs '^Package: apt$' "$ROOT/var/lib/dpkg/status"; then
            # A forky root made by hand or by a run that stopped after the
            # rename: taken as it is; the steps below complete it.
            say "adopting the existing $SUITE root at $ROOT"
            touch "$ROOT/$MARKER"
            return 0
        else
            die "$ROOT exists and is not a $SUITE root: remove it or set FORKY_ROOT"
        fi
    fi
    local partial=$ROOT.partial script
    if [ -e "$partial" ]; then
        ! awk -v p="$partial" '$5 == p || index($5, p "/") == 1 { found = 1 } END { exit !found }' \
            /proc/self/mountinfo || die "something is mounted under $partial: unmount it first"
        rm -rf "$partial"
    fi
    mkdir -p "$(dirname "$ROOT")"
    # Bookworm's debootstrap has no "forky" script; sid's fits testing.
    script=/usr/share/debootstrap/scripts/$SUITE
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    # In a private mount namespace: what debootstrap mounts in the target
    # (proc, sys) is gone when it ends, even if it is killed.
    unshare --mount --propagation private -- \
        debootstrap --variant=minbase --arch=amd64 "$SUITE" "$partial" "$MIRROR" "$script" >>"$LOG" 2>&1 ||
        die "debootstrap $SUITE failed (mirror $MIRROR); see $LOG"
    touch "$partial/$MARKER"
    mv "$partial" "$ROOT"
}

configure_root() {
    # The mirror may serve a snapshot whose Release file is past its
    # Valid-Until date: apt would then refuse every update.
    cat >"$ROOT/etc/apt/apt.conf.d/99forky-pythons" <<'APT'
// forky-pythons.sh: the mirror may be a snapshot past its Valid-Until date.
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT
    echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
    [ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
    # TLS as on the host: its extra CAs (a proxy's, say) and pip's config.
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
        cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
    fi
    if [ -f /etc/pip.conf ]; then
        cp /etc/pip.conf "$ROOT/etc/pip.conf"
    fi
    # The root's CARGO_HOME, with the host's cargo config (registry mirrors,
    # net settings) when it has one; the bind-mount points of the host's
    # toolchain.
    mkdir -p "$ROOT/root/.cargo/bin"
    local config
    for config in config.toml config; do
        if [ -f "$HOST_CARGO/$config" ]; then
            cp "$HOST_CARGO/$config" "$ROOT/root/.cargo/$config"
        fi
    done
}

# The packages, in forky's names; a trailing "?" marks one that may be absent.
wanted_packages() {
    local v
    for v in "${PYTHONS[@]}"; do
        printf '%s?\n' "python$v-dev" "python$v-venv"
    done
    printf '%s\n' "${BASE_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    if [ "$(rust_mode)" = debian ]; then
        printf '%s\n' rustc cargo
    fi
    local extra
    for extra in ${FORKY_EXTRA_PACKAGES:-}; do
        printf '%s\n' "$extra"
    done
}

install_packages() {
    local -a packages
    local out rc=0
    mapfile -t packages < <(wanted_packages)
    out=$(mktemp)
    # Inside the root: install what is missing (apt-get update only then),
    # skipping optional packages that forky does not have.
    # shellcheck disable=SC2016
    root_do bash -c '
        set -euo pipefail
        missing=()
        for spec in "$@"; do
            package=${spec%\?}
            dpkg-query -W -f="\${Status}" "$package" 2>/dev/null | grep -q "install ok installed" ||
                missing+=("$spec")
        done
        if [ ${#missing[@]} -eq 0 ]; then
            echo "all packages installed already"
        else
            apt-get update
            install=()
            for spec in "${missing[@]}"; do
                package=${spec%\?}
                if apt-cache show "$package" >/dev/null 2>&1; then
                    install+=("$package")
                elif [ "$spec" != "$package" ]; then
                    echo "forky-pythons: warning: forky has no $package; skipped" >&2
                else
                    echo "forky-pythons: forky has no $package" >&2
                    exit 1
                fi
            done
            if [ ${#install[@]} -gt 0 ]; then
                apt-get install -y --no-install-recommends "${install[@]}"
            fi
            apt-get clean
        fi
        # The host CAs copied in above, into the root'\''s bundle.
        update-ca-certificates
    ' forky-install "${packages[@]}" >"$out" 2>&1 || rc=$?
    cat "$out" >>"$LOG"
    grep '^forky-pythons: warning' "$out" >&2 || true
    rm -f "$out"
    return "$rc"
}

# Each interpreter starts, has its headers, makes a venv with pip; the C and
# Rust toolchains answer.
verify() {
    local v found=0
    for v in "${PYTHONS[@]}"; do
        [ -x "$ROOT/usr/bin/python$v" ] || {
            say "warning: no python$v in the root"
            continue
        }
        # shellcheck disable=SC2016
        root_do bash -c '
            set -euo pipefail
            v=$1
            python$v -c "import sys, sysconfig, ssl, ctypes, venv, ensurepip; assert sys.version_info[:2] == tuple(map(int, \"$v\".split(\".\")))"
            test -f /usr/include/python$v/Python.h
            python$v-config --embed --ldflags >/dev/null
            rm -rf /tmp/forky-pythons-venv-check
            python$v -m venv /tmp/forky-pythons-venv-check
            /tmp/forky-pythons-venv-check/bin/python -m pip --version >/dev/null
            rm -rf /tmp/forky-pythons-venv-check
        ' forky-verify "$v" >>"$LOG" 2>&1 || die "python$v in the root failed its check; see $LOG"
        found=$((found + 1))
    done
    [ "$found" -gt 0 ] || [ ${#PYTHONS[@]} -eq 0 ] || die "none of python${PYTHONS[*]} could be installed from $SUITE"
    local valgrind="valgrind --version;"
    [ "${FORKY_MINIMAL:-0}" = 1 ] && valgrind=""
    root_do bash -c "set -e; gcc --version; make --version; pkg-config --version; git --version; $valgrind cargo --version; rustc --version" \
        >>"$LOG" 2>&1 || die "a tool in the root does not run (gcc, make, pkg-config, git, valgrind, cargo, rustc); see $LOG"
}

# Prints the interpreters, the toolchain and the root's size.
where() {
    [ -e "$ROOT/$MARKER" ] || die "no root at $ROOT yet: run '$SELF setup' first"
    local v
    for v in "${PYTHONS[@]}"; do
        if [ -x "$ROOT/usr/bin/python$v" ]; then
            say "$(root_do "python$v" -c 'import sys, sysconfig; print("CPython %s%s" % (sys.version.split()[0], " (free-threaded)" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))'): $ROOT/usr/bin/python$v (/usr/bin/python$v inside the root)"
        else
            say "python$v: not installed (forky has no such package)"
        fi
    done
    say "$(root_do rustc --version), $(root_do cargo --version) ($(rust_mode) toolchain)"
    say "$(root_do gcc --version | head -n 1); $(root_do valgrind --version 2>/dev/null || echo 'no valgrind')"
    say "size of $ROOT: $(du -sxh "$ROOT" | cut -f1)"
    say "these binaries need forky's glibc: run them with"
    say "  $SELF run [-b HOSTDIR] -- python3.14 ..."
}

setup() {
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock -n -x 9 || die "another forky-pythons setup or run is in progress ($LOCK)"
    mkdir -p "$(dirname "$LOG")"
    echo "=== forky-pythons setup $(date -u +%FT%TZ)" >>"$LOG"
    local start
    start=$(now)
    check_host
    step "host: debootstrap installed" install_debootstrap
    step "root: debootstrap --variant=minbase $SUITE" bootstrap
    step "root: apt, hosts, CA certificates, pip and cargo config" configure_root
    step "root: packages installed (apt-get)" install_packages
    step "root: interpreters, venv, pip and toolchain checked" verify
    say "ready in $(elapsed "$start") s"
    where
}

# Exit 0 when the root is made and every wanted package (the optional ones
# that forky has) is installed; read from the root's dpkg database.
ready() {
    [ -e "$ROOT/$MARKER" ] || return 1
    local spec package
    while IFS= read -r spec; do
        package=${spec%\?}
        if ! dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Status}' "$package" 2>/dev/null |
            grep -q "install ok installed"; then
            # An optional package forky lacks stays missing after a setup;
            # an interpreter's is only optional when its python is absent.
            [ "$spec" != "$package" ] && [ ! -x "$ROOT/usr/bin/${package%-*}" ] && continue
            return 1
        fi
    done < <(wanted_packages)
}

# ---------------------------------------------------------------------------

usage() {
    sed -n '/^# Usage/,/^# Environment:/p' "$SELF" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

run_command() {
    local interactive=$1 binds="" cwd="" extra_env="" spec host inside
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            -b)
                [ $# -ge 2 ] || usage
                spec=$2
                host=${spec%%:*}
                inside=${spec#*:}
                [ "$spec" = "$host" ] && inside=$host
                host=$(readlink -f "$host")
                [ -d "$host" ] || die "-b $spec: $host is not a directory"
                case "$inside" in /*) ;; *) die "-b $spec: the path inside must be absolute" ;; esac
                binds+=${binds:+$'\n'}$host:$inside
                [ -n "$cwd" ] || cwd=$inside
                shift 2
                ;;
            -C)
                [ $# -ge 2 ] || usage
                cwd=$2
                shift 2
                ;;
            -e)
                [ $# -ge 2 ] || usage
                case "$2" in *=*) ;; *) die "-e wants NAME=VALUE, not '$2'" ;; esac
                extra_env+=${extra_env:+$'\n'}$2
                shift 2
                ;;
            --)
                shift
                break
                ;;
            -*) usage ;;
            *) break ;;
        esac
    done
    [ -e "$ROOT/$MARKER" ] || die "no root at $ROOT yet: run '$SELF setup' first"
    if [ "$interactive" = 1 ]; then
        set -- bash
    fi
    [ $# -gt 0 ] || usage
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    if ! flock -n -s 9; then
        say "waiting for a setup in progress ($LOCK)"
        flock -s 9
    fi
    local envs
    envs=$(passed_env)
    [ -n "$extra_env" ] && envs+=${envs:+$'\n'}$extra_env
    in_root "$binds" "${cwd:-/root}" "$envs" "$@"
}

case "${1:-setup}" in
    setup) setup ;;
    run)
        shift
        run_command 0 "$@"
        ;;
    shell)
        shift
        run_command 1 "$@"
        ;;
    where) where ;;
    ready) ready ;;
    __inner)
        shift
        inner "$@"
        ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
