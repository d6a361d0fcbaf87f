"""The package import graph stays a stack: no package imports one above it, so there is no
circle. Imports are read from the source with `ast` (those inside functions count too: a
late import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top; a package may import only packages of lower layers. (`avatarkit` is the
#: facade in avatarkit/__init__.py, `server` the live server.)
LAYERS: list[set[str]] = [
    {"errors", "version", "native_stderr", "lazy"},
    {"audio", "face"},
    {"tts"},  # what a voice delivers: audio, timed phonemes, character alignment
    {"visemes"},  # phonemes and alignments -> viseme timelines
    {"mouth", "listen"},  # the mouth model; audio -> phonemes -> visemes
    {"idle"},
    {"render"},
    {"roi", "build"},  # variant C builds on the renderer's avatar; the build recipe
    {"server"},
    {"cli"},
    {"avatarkit"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] == "server":
        return "server"
    if rel[1:] == ("__init__.py",):
        return "avatarkit"
    return rel[1].removesuffix(".py")


def _imported(module: str, names: list[str]) -> list[str]:
    parts = module.split(".")
    if parts[0] == "server":
        return ["server"]
    if parts[0] != "avatarkit":
        return []
    if len(parts) > 1:
        return [parts[1]]
    return [n if n in RANK else "avatarkit" for n in names]  # `from avatarkit import x`


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package -> where, as `path:line`."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    files = [*sorted((ROOT / "avatarkit").rglob("*.py")), *sorted((ROOT / "server").rglob("*.py"))]
    for path in files:
        src = _package(path)
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [t for a in node.names for t in _imported(a.name, [])]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = _imported(node.module, [a.name for a in node.names])
            else:
                continue
            for dst in targets:
                if dst != src:
                    edges[src, dst].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return edges


def test_every_package_has_a_layer():
    packages = {_package(p) for p in (ROOT / "avatarkit").rglob("*.py")} | {"server"}
    assert packages - RANK.keys() == set(), "add the new package to LAYERS"
    assert RANK.keys() - packages == set(), "a package in LAYERS no longer exists"


def test_no_package_imports_upward():
    upward = {f"{a} -> {b}": where for (a, b), where in import_edges().items()
              if RANK[b] >= RANK[a]}
    assert upward == {}


def test_the_graph_has_no_circle():
    """Independent of LAYERS: a depth-first search over the edges finds no cycle."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in import_edges():
        graph[a].add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            assert visit(start, []) is None


def test_the_readme_map_names_every_package_and_doc():
    text = (ROOT / "README.md").read_text("utf-8")
    layout = text[text.index("## Project layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    packages = {p.parent.name for p in (ROOT / "avatarkit").glob("*/__init__.py")}
    missing = {f"{name}/" for name in packages if f"  {name}/" not in layout}
    missing |= {d.name for d in (ROOT / "docs").glob("*.md") if d.name not in layout}
    assert missing == set(), "README's project layout does not mention these"
