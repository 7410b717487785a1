#!/usr/bin/env python3
"""Lists every circle of module imports inside each crate, and fails on one.

A module's edges are the modules it names through `crate::` or `super::` paths (in `use`
items and inline alike). A name the crate root re-exports (`pub use runtime::Runtime`) counts
as an edge to the module that defines it, so `use crate::Runtime` is seen for what it is. A
parent's `mod child;` declaration is not an edge: a parent may call its children, but a child
that reaches back into its parent (or a sibling that reaches back into it) closes a circle.

Usage: scripts/circles.py [ROOT ...]   (default: every crate under crates/ and tools/)
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\buse\s+(crate|super)::\{", re.S)
PUB_USE = re.compile(r"pub(?:\([a-z]+\))?\s+use\s+([a-z_][a-z0-9_]*)::(\{[^;]*\}|[A-Za-z0-9_:]+)\s*;", re.S)
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")


def module_of(src: Path, path: Path) -> tuple:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text: str) -> str:
    """Comments and `#[cfg(test)] mod tests { .. }` bodies go: tests may import anything."""
    text = COMMENT.sub("", text)
    while (m := TEST_MOD.search(text)) is not None:
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]
    return text


def group_paths(text: str, start: int) -> list:
    """The paths inside one `use crate::{...}` group, nested groups flattened."""
    toks = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|::|\{|\}|,|;", text[start:])
    pos = 0

    def tree(prefix: str) -> list:
        # A group's items up to its closing brace.
        nonlocal pos
        out, cur = [], prefix
        while pos < len(toks):
            tok = toks[pos]
            pos += 1
            if tok == "{":
                out += tree(cur)
                cur = None
            elif tok in ("}", ";"):
                if cur and cur != prefix:
                    out.append(cur)
                return out
            elif tok == ",":
                if cur and cur != prefix:
                    out.append(cur)
                cur = prefix
            elif tok == "::":
                pass
            elif cur is not None:
                cur = f"{cur}::{tok}" if cur else tok
        return out

    return tree("")


def crate_graph(src: Path) -> dict:
    files = {module_of(src, p): p for p in src.rglob("*.rs")}
    texts = {m: strip(p.read_text()) for m, p in files.items()}
    root = texts.get(())
    reexports = {}
    if root is not None:
        for m in PUB_USE.finditer(root):
            target, names = m.group(1), m.group(2)
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names):
                reexports.setdefault(name, (target,))
    modules = set(files)

    def resolve(base: tuple, segs: list) -> tuple | None:
        """The longest module prefix of base + segs, or a root re-export."""
        best = None
        for n in range(len(segs) + 1):
            cand = base + tuple(segs[:n])
            if cand in modules:
                best = cand
        if best == () and segs and segs[0] in reexports:
            best = reexports[segs[0]]
        return best

    graph = {}
    for mod, text in texts.items():
        if mod == ():
            continue
        edges = set()
        refs = [(m.group(1), m.group(2).strip(":").split("::")) for m in PATH.finditer(text)]
        for g in GROUP.finditer(text):
            for p in group_paths(text, g.end()):
                refs.append((g.group(1), p.split("::")))
        # A child file (`a/b.rs`) counts its own `super` as its parent module.
        for kind, segs in refs:
            base = () if kind == "crate" else mod[:-1]
            while kind == "super" and segs and segs[0] == "super":
                base, segs = base[:-1], segs[1:]
            target = resolve(base, [s for s in segs if s != "self"])
            if target is not None and target != mod and target != ():
                edges.add(target)
        graph[mod] = edges
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    top = Path(__file__).resolve().parent.parent
    roots = [Path(a) for a in sys.argv[1:]] or sorted(
        p.parent for d in ("crates", "tools") for p in (top / d).glob("*/Cargo.toml")
    )
    found = 0
    for crate in roots:
        src = crate / "src"
        if not src.is_dir():
            continue
        for comp in circles(crate_graph(src)):
            found += 1
            names = ", ".join("::".join(m) for m in comp)
            print(f"circle in {crate.name}: {names}")
    if found:
        print(f"{found} circle(s) of imports")
        return 1
    print(f"no circles of imports in {len(roots)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
