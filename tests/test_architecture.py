"""The import graph of probest/ (built from the source with ``ast``) and the layer rules of
docs/architecture.md.

Every ``import``/``from ... import`` statement is an edge, at module level or inside a
function alike; relative imports are resolved; ``from pkg import Name`` points at the module
that defines ``Name`` when ``pkg`` exports it lazily through ``probest._lazy.attach``; a
constant ``importlib.import_module("probest...")`` counts too.  Lazy exports themselves (an
``attach`` table, a PEP 562 ``__getattr__``) are not edges: they import on first attribute
access, once every module involved has loaded.  The layers table and the
declared cross-family exceptions are read from docs/architecture.md, so the page and the
test cannot drift apart.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

# ----------------------------------------------------------------------------- the graph
@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    in_function: bool
    written: str  # the module as the statement spells it (before lazy exports are followed)


def _modules(pkg_dir: pathlib.Path) -> dict[str, tuple[pathlib.Path, bool]]:
    """``{dotted name: (path, is_package)}`` for every .py file below ``pkg_dir``."""
    out = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = list(path.relative_to(pkg_dir.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _lazy_table(tree: ast.Module, package: str) -> dict[str, str]:
    """``{name: module}`` of a package ``__init__`` calling ``attach(__name__, {...})``."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "attach"
                and len(node.args) == 2 and isinstance(node.args[1], ast.Dict)):
            table = {}
            for k, v in zip(node.args[1].keys, node.args[1].values, strict=True):
                mod = v.value
                table[k.value] = mod if mod.startswith(package.split(".")[0] + ".") else f"{package}.{mod}"
            return table
    return {}


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing_function(node: ast.AST, parent: dict) -> ast.AST | None:
    while node in parent:
        node = parent[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return node
    return None


def build_graph(pkg_dir: pathlib.Path) -> tuple[set[str], list[Edge]]:
    """Modules of the package at ``pkg_dir`` and the import edges between them."""
    mods = _modules(pkg_dir)
    top = pkg_dir.name
    trees = {name: ast.parse(path.read_text(), str(path)) for name, (path, _) in mods.items()}
    lazy = {name: _lazy_table(trees[name], name) for name, (_, is_pkg) in mods.items() if is_pkg}

    def owner(dotted: str) -> str | None:  # the longest prefix that is a module of ours
        while dotted not in mods and "." in dotted:
            dotted = dotted.rpartition(".")[0]
        return dotted if dotted in mods else None

    edges = []
    for name, tree in trees.items():
        package = name if mods[name][1] else name.rpartition(".")[0]
        parent = _parents(tree)
        for node in ast.walk(tree):
            targets = []  # (resolved module, module as written)
            if isinstance(node, ast.Import):
                targets = [(owner(a.name), a.name) for a in node.names if a.name.split(".")[0] == top]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                if src.split(".")[0] != top:
                    continue
                for alias in node.names:
                    full = f"{src}.{alias.name}"
                    if full in mods:
                        targets.append((full, full))
                    elif alias.name in lazy.get(src, {}):
                        targets.append((owner(lazy[src][alias.name]), src))
                    else:
                        targets.append((owner(src), src))
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)
                  and str(node.args[0].value).split(".")[0] == top
                  and getattr(_enclosing_function(node, parent), "name", None) != "__getattr__"):
                targets = [(owner(node.args[0].value), node.args[0].value)]
            for dst, written in targets:
                if dst is not None and dst != name:
                    in_fn = _enclosing_function(node, parent) is not None
                    edges.append(Edge(name, dst, node.lineno, in_fn, written))
    return set(mods), edges


def find_cycles(nodes: set[str], edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    succ = {n: sorted({e.dst for e in edges if e.src == n}) for n in nodes}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for v in sorted(nodes):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


# ----------------------------------------------------------------------------- the rules
def _doc_block(name: str) -> str:
    text = DOC.read_text()
    m = re.search(rf"<!-- {name}:begin -->(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"docs/architecture.md lost its <!-- {name}:begin/end --> markers"
    return m.group(1)


def layer_rules() -> tuple[list[tuple[str, list[str]]], dict[str, set[str]]]:
    """From the doc's layers table: ``[(layer, module patterns)]`` and ``{layer: may import}``."""
    patterns, allowed = [], {}
    rows = [r for r in _doc_block("layers").splitlines() if r.startswith("|")][2:]
    for row in rows:
        layer, mods, may = (c.strip() for c in row.strip("|").split("|"))
        layer = layer.strip("`*")
        patterns.append((layer, re.findall(r"`([\w.<>*]+)`", mods)))
        allowed[layer] = set(re.findall(r"`(\w+)`", may))
    return patterns, allowed


def declared_family_exceptions() -> set[tuple[str, str]]:
    return set(re.findall(r"^- `([\w.]+)` -> `([\w.]+)`", _doc_block("family-exceptions"), re.M))


def layer_of(mod: str, patterns, families) -> str | None:
    for layer, pats in patterns:
        for p in pats:
            if p.endswith(".*"):
                head = p[:-2]
                if head == "probest.<family>":
                    fam = mod.split(".")[1] if mod.count(".") else None
                    if fam in families:
                        return layer
                elif mod == head or mod.startswith(head + "."):
                    return layer
            elif mod == p:
                return layer
    return None


def _family(mod: str) -> str:
    return ".".join(mod.split(".")[:2])


@pytest.fixture(scope="module")
def graph():
    return build_graph(ROOT / "probest")


@pytest.fixture(scope="module")
def families():
    import probest

    return set(probest.FAMILIES)


def test_graph_sees_known_edges(graph):
    """The builder resolves what the rules rely on (if it saw nothing, every rule would pass)."""
    nodes, edges = graph
    pairs = {(e.src, e.dst): e for e in edges}
    assert {"probest.base", "probest.flows._density", "probest.cli"} <= nodes
    assert not pairs[("probest.flows._density", "probest.base")].in_function
    # function-level import of a lazily exported name resolves to the defining module
    assert pairs[("probest.flows._density", "probest.datasets._flows")].in_function
    # `from probest.flows import _ebflow` is an edge to the submodule
    assert ("probest.flows._density", "probest.flows._ebflow") in pairs
    assert len(edges) > 100


def test_no_import_cycle(graph):
    nodes, edges = graph
    cycles = find_cycles(nodes, edges)
    detail = "\n".join(sorted({f"  {e.src}:{e.line} -> {e.dst}" for e in edges
                               if any(e.src in c and e.dst in c for c in cycles)}))
    assert not cycles, f"import cycles {cycles}:\n{detail}"


def test_every_module_has_a_layer(graph, families):
    patterns, _ = layer_rules()
    nodes, _ = graph
    missing = sorted(m for m in nodes if layer_of(m, patterns, families) is None)
    assert not missing, (f"modules in no layer of docs/architecture.md: {missing}; add each to "
                         "the layers table (it decides what the module may import)")


def test_imports_follow_the_layers(graph, families):
    patterns, allowed = layer_rules()
    assert set(allowed) == {"top", "leaf", "core", "datasets", "testing", "family", "app"}
    exceptions = declared_family_exceptions()
    _, edges = graph
    bad = []
    for e in edges:
        src, dst = layer_of(e.src, patterns, families), layer_of(e.dst, patterns, families)
        if dst not in allowed[src]:
            bad.append(f"{e.src}:{e.line} ({src}) imports {e.dst} ({dst})")
        elif src == dst == "family" and _family(e.src) != _family(e.dst) \
                and (_family(e.src), _family(e.dst)) not in exceptions:
            bad.append(f"{e.src}:{e.line} imports another family's {e.dst} (not a declared exception)")
    assert not bad, "layer rules of docs/architecture.md broken:\n  " + "\n  ".join(bad)


def test_private_modules_stay_inside_their_package(graph):
    """``probest.a._b`` is imported (as written) only from inside ``probest.a``; top-level
    ``probest._x`` leaves are the shared helpers everyone may use."""
    _, edges = graph
    bad = []
    for e in edges:
        parts = e.written.split(".")
        for i in range(2, len(parts)):
            if parts[i].startswith("_") and not parts[i].startswith("__"):
                owner = ".".join(parts[:i])
                if e.src != owner and not e.src.startswith(owner + "."):
                    bad.append(f"{e.src}:{e.line} imports {e.written}, private to {owner}")
                break
    assert not bad, "\n".join(bad)


def _module_level_imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add(node.module)
    return out


def test_package_init_imports_only_the_standard_library():
    got = _module_level_imports(ROOT / "probest" / "__init__.py")
    heavy = {m for m in got if m.split(".")[0] not in sys.stdlib_module_names}
    assert not heavy, f"probest/__init__.py imports {heavy} at module level"


def test_family_and_datasets_inits_only_attach_lazily(families):
    for sub in sorted(families | {"datasets"}):
        got = _module_level_imports(ROOT / "probest" / sub / "__init__.py")
        assert got <= {"__future__", "probest._lazy"}, f"probest/{sub}/__init__.py imports {got}"


# ------------------------------------------------------------- the checker catches breakage
def _write(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for rel, src in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(src)
    return root / "pkg"


def test_builder_resolves_relative_lazy_and_function_level_imports(tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from pkg._lazy import attach\n"
                             "__getattr__, __dir__, __all__ = attach(__name__, {'Thing': '_impl'})\n",
        "pkg/a/_impl.py": "from . import _helper\nfrom .._lazy import attach\n",
        "pkg/a/_helper.py": "def f():\n    from ..b import Other\n",
        "pkg/b/__init__.py": "",
        "pkg/b/mod.py": "import importlib\nimportlib.import_module('pkg.a._helper')\n",
        "pkg/_lazy.py": "def attach(*a):\n    pass\n",
        "pkg/c.py": "from pkg.a import Thing\n",
        "pkg/d.py": "import importlib\ndef __getattr__(name):\n"
                    "    return importlib.import_module('pkg.c')\n",
    })
    nodes, edges = build_graph(pkg)
    got = {(e.src, e.dst, e.in_function) for e in edges}
    assert got == {
        ("pkg.a", "pkg._lazy", False),
        ("pkg.a._impl", "pkg.a._helper", False),
        ("pkg.a._impl", "pkg._lazy", False),
        ("pkg.a._helper", "pkg.b", True),
        ("pkg.b.mod", "pkg.a._helper", False),
        ("pkg.c", "pkg.a._impl", False),
    }
    assert find_cycles(nodes, edges) == []


def test_cycle_finder_reports_a_function_level_cycle(tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/x.py": "def f():\n    from pkg import y\n",
        "pkg/y.py": "from pkg.z import g\n",
        "pkg/z.py": "import pkg.x\ndef g():\n    pass\n",
        "pkg/w.py": "import pkg.x\n",
    })
    nodes, edges = build_graph(pkg)
    assert find_cycles(nodes, edges) == [["pkg.x", "pkg.y", "pkg.z"]]
