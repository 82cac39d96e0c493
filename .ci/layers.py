#!/usr/bin/env python3
"""The layer rule of src/ (DEVELOPMENT.md, "Layout"): no import circle between top-level
modules, and the pure modules import nothing of the layers above them or of the UI.

Reads src/**/*.rs, collects every `crate::X` reference (use lines, grouped `use crate::{..}`
and inline paths; comments and strings are skipped) per top-level module (`foo.rs` and `foo/`
are one module `foo`), and fails printing each offending edge with its file:line."""

import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Modules of the bottom layers: data, pure logic, state files and the Lima client.
PURE = {
    # pure core
    "plan", "script", "config", "names", "fingerprint", "tools", "escape", "digest", "clock",
    "error", "typos", "netpattern",
    # state files and host files
    "journal", "owner", "lock", "trust", "pool", "paths", "filenames", "atomic", "fsread",
    "hostfile", "handover", "project", "procinfo", "signals", "worktrees", "workdir",
    "integrations",
    # the Lima client
    "lima",
}
# What a pure module must not import: the workflow layer, the entry points and the UI.
ABOVE = {"workflow", "commands", "keeper", "ui", "events", "mcp", "web", "net", "tty", "doctor"}


def strip(text):
    """Blanks out comments, string and char literals (keeping line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:i + 12]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:i + 12])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def references(text):
    """Yields (line, top-level module) for every `crate::` path in stripped source."""
    for m in re.finditer(r"\bcrate\s*::\s*", text):
        line = text.count("\n", 0, m.start()) + 1
        rest = text[m.end():]
        if rest.startswith("{"):
            depth, j = 0, 0
            for j, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    break
            group = rest[1:j]
            # Top-level names of the group: words at depth 0, first in each comma item.
            depth, item = 0, ""
            for ch in group + ",":
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    word = re.match(r"\s*(\w+)", item)
                    if word:
                        yield line + item.count("\n") * 0, word.group(1)
                    item = ""
                else:
                    item += ch
        else:
            word = re.match(r"(\w+)", rest)
            if word:
                yield line, word.group(1)


def modules():
    found = {}
    for top, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith(".rs"):
                path = os.path.join(top, f)
                rel = os.path.relpath(path, SRC)
                name = rel.split(os.sep)[0]
                name = name[:-3] if name.endswith(".rs") else name
                found.setdefault(name, []).append(path)
    return found


def main():
    mods = modules()
    edges = {}  # (from, to) -> first "file:line"
    for name, files in mods.items():
        for path in files:
            with open(path, encoding="utf-8") as f:
                text = strip(f.read())
            for line, target in references(text):
                if target in mods and target != name and name != "main":
                    where = f"{os.path.relpath(path, os.path.join(SRC, '..'))}:{line}"
                    edges.setdefault((name, target), where)
    failed = False
    for (a, b), where in sorted(edges.items()):
        if a in PURE and b in ABOVE:
            print(f"layers: pure module `{a}` imports `{b}` ({where})")
            failed = True
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    for cycle in cycles(graph):
        path = " -> ".join(cycle + [cycle[0]])
        print(f"layers: import circle {path}")
        for a, b in zip(cycle, cycle[1:] + [cycle[0]]):
            print(f"  {a} -> {b} at {edges[(a, b)]}")
        failed = True
    for layer in LAYERED:
        inner = inner_edges(layer)
        graph = {}
        for a, b in inner:
            graph.setdefault(a, set()).add(b)
        for cycle in cycles(graph):
            path = " -> ".join(cycle + [cycle[0]])
            print(f"layers: import circle inside {layer}/: {path}")
            for a, b in zip(cycle, cycle[1:] + [cycle[0]]):
                print(f"  {a} -> {b} at {inner[(a, b)]}")
            failed = True
    if failed:
        return 1
    print(f"layers: {len(mods)} top-level modules, {len(edges)} edges, no circle, pure modules clean")
    return 0


# Folders whose files must not import each other in a circle either.
LAYERED = ("commands", "workflow")


def inner_edges(layer):
    """(file module, file module) -> first "file:line", for `super::X` and `crate::layer::X`
    references between the files of `src/<layer>/` (`mod.rs` is the folder itself)."""
    root = os.path.join(SRC, layer)
    names = {}
    for top, _, files in os.walk(root):
        for f in files:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(top, f), root)
                parts = rel[:-3].split(os.sep)
                if parts[-1] == "mod":
                    parts = parts[:-1]
                names[os.path.join(top, f)] = parts[0] if parts else ""
    edges = {}
    for path, name in names.items():
        with open(path, encoding="utf-8") as f:
            text = strip(f.read())
        pattern = r"\b(?:crate\s*::\s*" + layer + r"|super)\s*::\s*(\w+)"
        if name == "":
            pattern = r"\bcrate\s*::\s*" + layer + r"\s*::\s*(\w+)"
        for m in re.finditer(pattern, text):
            target = m.group(1)
            if name and m.group(0).startswith("super") and os.path.basename(path) != "mod.rs" \
                    and os.path.dirname(path) != root:
                continue  # super of a nested file is its own folder's module
            if target in names.values() and target != name:
                line = text.count("\n", 0, m.start()) + 1
                where = f"{os.path.relpath(path, os.path.join(SRC, '..'))}:{line}"
                edges.setdefault((name or "mod", target), where)
    return edges


def cycles(graph):
    """One shortest circle per strongly connected component with more than one module."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                comps.append(set(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    for comp in comps:
        start = min(comp)
        # Breadth-first from start back to start, inside the component.
        prev, queue, found = {start: None}, [start], None
        while queue and not found:
            nxt = []
            for v in queue:
                for w in sorted(graph.get(v, ())):
                    if w not in comp:
                        continue
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            queue = nxt
        path, v = [], found
        while v is not None:
            path.append(v)
            v = prev[v]
        yield list(reversed(path))


if __name__ == "__main__":
    sys.exit(main())
