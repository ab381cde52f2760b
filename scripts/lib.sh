# Shared by scripts/test.sh and scripts/bench.sh (sourced, not run).

step() { printf '\n=== %s\n' "$*"; }

# The newest installed CPython 3.<minor>: pyenv's when it has one, else
# python3.<minor> on PATH; prints nothing when there is none.
find_python() {
    local minor=$1 version
    if command -v pyenv >/dev/null 2>&1; then
        version=$(pyenv versions --bare --skip-aliases 2>/dev/null | grep -E "^3\.${minor}\.[0-9]+$" | sort -V | tail -n 1 || true)
        if [ -n "$version" ]; then
            echo "$(pyenv prefix "$version")/bin/python3.${minor}"
            return
        fi
    fi
    command -v "python3.${minor}" 2>/dev/null || true
}

# find_python, or, when there is none, a line on stderr saying that TOOL
# skips 3.<minor> (and nothing on stdout): for loops over minor versions.
find_python_or_skip() {
    local tool=$1 minor=$2 python
    python=$(find_python "$minor")
    [ -n "$python" ] || echo "${tool}: no CPython 3.${minor} found, skipped" >&2
    echo "$python"
}

# "py311" for an interpreter.
python_tag() {
    "$1" -c 'import sys; print("py%d%d" % sys.version_info[:2])'
}
