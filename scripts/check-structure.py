#!/usr/bin/env python3
"""The structure src/ keeps, checked rather than hoped:

- no import circle, between files or between rooms;
- at most MAX_FLOORS floors: a room (a top-level file of src/, or a folder
  with everything in it) is on floor 1 when it uses no other room, else one
  above the highest room it uses; lib.rs is a room too;
- the GIL tokens (`MainGil`, `Attached`) are made only in src/cpython/: no
  `new_unchecked` outside it, and no token conjured by transmute, zeroed
  memory or a raw read anywhere else.

An import is any path that names a module of the crate: `use` trees (nested
braces, `self`, `super::super`, `as`) and paths in code that start at
`crate`, `self`, `super` or a module the file declares. Comments and the
unit tests' inline module are not read. `python3 scripts/check-structure.py`
prints the floors and exits 1 on a broken rule; the test command runs it
with the lints.
"""

import re
import sys
from pathlib import Path

MAX_FLOORS = 7
SRC = Path(__file__).resolve().parent.parent / "src"
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
MOD_PATH = re.compile(r'path\s*=\s*"([^"]+)"')
MOD_DECL = re.compile(rf"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+({IDENT})\s*;", re.M)
TOKENS = ("MainGil", "Attached")
CONJURED = re.compile(r"transmute|zeroed\(|zeroed::|MaybeUninit|read_unaligned|ptr::read|\.read\(\)")


def code_of(text):
    """The text without comments (line comments; the code has no block
    comments) and without the unit tests' inline module, which pyalloc keeps
    at the end of a file."""
    text = re.split(r"^#\[cfg\(test\)\]\s*\nmod tests\b", text, maxsplit=1, flags=re.M)[0]
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def module_dir(file):
    """The folder a module file's child modules live in."""
    return file.parent if file.name in ("mod.rs", "lib.rs") else file.with_suffix("")


def module_file(folder):
    """The file of the module whose children live in `folder`."""
    if folder == SRC:
        return SRC / "lib.rs"
    return folder / "mod.rs" if (folder / "mod.rs").exists() else folder.with_suffix(".rs")


def parent_module(file):
    if file == SRC / "lib.rs":
        return None
    return module_file(file.parent.parent if file.name == "mod.rs" else file.parent)


def declared(file):
    """The modules `file` declares with `mod x;`: name -> files (several when
    `#[path]` attributes choose one by cfg)."""
    found, pending = {}, []
    for line in file.read_text().splitlines():
        pending += MOD_PATH.findall(line)
        decl = MOD_DECL.match(line)
        if decl:
            name = decl.group(1)
            folder = module_dir(file)
            if pending:
                # Several `mod x;` chosen by cfg: all of them.
                found.setdefault(name, []).extend(folder / p for p in pending)
            elif (folder / name / "mod.rs").exists():
                found[name] = [folder / name / "mod.rs"]
            else:
                found[name] = [folder / f"{name}.rs"]
        if decl or not line.strip().startswith("#"):
            pending = []
    return found


def split_top(text, sep=","):
    parts, depth, start = [], 0, 0
    for at, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == sep and depth == 0:
            parts.append(text[start:at])
            start = at + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def expand_use(tree):
    """`a::{b, c::{d, self}}` -> [[a, b], [a, c, d], [a, c]]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    brace = tree.find("{")
    if brace < 0:
        return [[s.strip() for s in tree.split(" as ")[0].split("::") if s.strip()]]
    prefix = [s.strip() for s in tree[:brace].split("::") if s.strip()]
    inner = tree[brace + 1 : tree.rfind("}")]
    paths = []
    for part in split_top(inner):
        for sub in expand_use(part):
            paths.append(prefix + ([] if sub == ["self"] else sub))
    return paths


def resolve(file, segments):
    """The module files a path written in `file` names (empty for a path
    outside the crate): the deepest module it reaches."""
    if not segments:
        return []
    head, rest = segments[0], segments[1:]
    children = declared(file)
    if head == "crate":
        current = [SRC / "lib.rs"]
    elif head == "self":
        current = [file]
    elif head == "super":
        current = [file]
        while head == "super":
            parent = parent_module(current[0])
            if parent is None:
                return []
            current = [parent]
            head, rest = (rest[0], rest[1:]) if rest else ("", [])
        rest = ([head] if head else []) + rest
    elif head in children:
        current, rest = children[head], rest
    else:
        return []
    for name in rest:
        nxt = declared(current[0]).get(name)
        if not nxt:
            break
        current = nxt
    return current


def inline_modules(code):
    """The spans of inline `mod x { ... }` blocks in `code`."""
    spans = []
    for match in re.finditer(rf"\bmod\s+{IDENT}\s*\{{", code):
        depth, at = 0, match.end() - 1
        for at in range(match.end() - 1, len(code)):
            depth += {"{": 1, "}": -1}.get(code[at], 0)
            if depth == 0:
                break
        spans.append((match.start(), at))
    return spans


def imports(file):
    """The files `file` takes names from."""
    code = re.sub(r"pub\(in [a-z_:]+\)", "pub", code_of(file.read_text()))
    inline = inline_modules(code)
    paths = []
    for match in re.finditer(r"\buse\s+([^;]+);", code):
        # A `use` inside an inline module resolves from that module: its
        # `super` is this file.
        inside = any(a <= match.start() < b for a, b in inline)
        for path in expand_use(match.group(1)):
            if inside and path[:1] == ["super"]:
                path = ["self"] + path[1:]
            paths.append(path)
    rest = re.sub(r"\buse\s+[^;]+;", "", code)
    heads = "|".join(["crate", "self", "super"] + sorted(declared(file)))
    for match in re.finditer(rf"(?<![:\w])((?:{heads})(?:::{IDENT})+)", rest):
        path = match.group(1).split("::")
        if path[0] == "super" and any(a <= match.start() < b for a, b in inline_modules(rest)):
            path = ["self"] + path[1:]
        paths.append(path)
    found = set()
    for path in paths:
        found.update(resolve(file, path))
    found.discard(file)
    return found


def room(file):
    rel = file.relative_to(SRC)
    return rel.parts[0] + ("/" if len(rel.parts) > 1 else "")


def circle_in(graph):
    """One circle of `graph`, as a list, or None."""
    state = {}
    for start in sorted(graph):
        if start in state:
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = "open"
        while path:
            step = next(iters[-1], None)
            if step is None:
                state[path.pop()] = "done"
                iters.pop()
            elif state.get(step) == "open":
                return path[path.index(step) :] + [step]
            elif step not in state:
                state[step] = "open"
                path.append(step)
                iters.append(iter(sorted(graph.get(step, ()))))
    return None


def token_problems(files):
    problems = []
    for f in files:
        inside = room(f) == "cpython/"
        for n, line in enumerate(code_of(f.read_text()).splitlines(), 1):
            where = f"src/{f.relative_to(SRC)}:{n}"
            if "new_unchecked" in line and not inside:
                problems.append(f"{where}: new_unchecked outside src/cpython/")
            if any(t in line for t in TOKENS) and CONJURED.search(line) and not inside:
                problems.append(f"{where}: a GIL token conjured outside src/cpython/")
    return problems


def main():
    files = sorted(SRC.rglob("*.rs"))
    graph = {f: imports(f) for f in files}
    problems = []
    named = {str(f.relative_to(SRC)): {str(t.relative_to(SRC)) for t in ts} for f, ts in graph.items()}
    circle = circle_in(named)
    if circle:
        problems.append("files import in a circle: " + " -> ".join(circle))
    rooms = {}
    for f, targets in graph.items():
        rooms.setdefault(room(f), set()).update(room(t) for t in targets if room(t) != room(f))
    circle = circle_in(rooms)
    if circle:
        problems.append("rooms import in a circle: " + " -> ".join(circle))
        floors = {r: 0 for r in rooms}
    else:
        floors = {}

        def floor(r):
            if r not in floors:
                floors[r] = 1 + max((floor(t) for t in rooms[r]), default=0)
            return floors[r]

        for r in rooms:
            floor(r)
        for r in sorted(rooms, key=lambda r: (-floors[r], r)):
            print(f"floor {floors[r]}  src/{r}  uses: {', '.join(sorted(rooms[r])) or '-'}")
        if max(floors.values()) > MAX_FLOORS:
            problems.append(f"{max(floors.values())} floors, more than {MAX_FLOORS}")
    problems += token_problems(files)
    for p in problems:
        print("structure: " + p, file=sys.stderr)
    print(
        f"structure: {len(files)} files, {len(rooms)} rooms, {max(floors.values())} floors, "
        f"{len(problems)} problem(s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
