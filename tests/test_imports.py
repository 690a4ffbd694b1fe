"""Import hygiene of the shipped packages (jaxgan/, checkpoints_convert/, pallas_kernels/), read as text with `ast`
(nothing is imported): no import cycles, no imports of another module's private names, no references to the specs
folder (../shared/specs does not ship). The checker itself is tested on small synthetic trees first.

The module graph: an edge for every import statement, function-level ones included (a deferred import is still a
dependency); `from pkg import name` imports the module pkg.name when there is one, else pkg; relative imports are
resolved against the importing module. A private import is `from a.b import _x` or a use of `a.b._x` (a.b bound by
an import) where a.b is another project module; a package's `__init__` re-exporting its own children is fine.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jaxgan", "checkpoints_convert", "pallas_kernels")


def project_modules(root, packages=PACKAGES):
    """{dotted module name: path} of every .py file under the packages (a package is named by its __init__.py)."""
    found = {}
    for package in packages:
        for path in sorted((Path(root) / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def resolve_relative(module, level, current, is_package):
    """The absolute name of `from <level dots><module> import ...` written in module `current`."""
    if level == 0:
        return module
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def _may_touch_privates(current, target, is_package):
    """A module may use its own private names, and a package's __init__ those of its children."""
    return target == current or (is_package and target.startswith(current + "."))


def import_graph(root, packages=PACKAGES):
    """(modules, graph {module: set of imported project modules}, private-import offenders as 'path:line: text')."""
    modules = project_modules(root, packages)
    graph = {name: set() for name in modules}
    private = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        bound = {}  # local name -> project module it is bound to by an import (any scope)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        graph[name].add(alias.name)
                    if alias.asname and alias.name in modules:
                        bound[alias.asname] = alias.name
                    elif not alias.asname and alias.name.split(".")[0] in modules:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                target = resolve_relative(node.module or "", node.level, name, is_package)
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in modules:  # `from pkg import submodule`
                        graph[name].add(full)
                        bound[alias.asname or alias.name] = full
                    elif target in modules:
                        graph[name].add(target)
                        if _private(alias.name) and not _may_touch_privates(name, target, is_package):
                            private.append(f"{rel}:{node.lineno}: from {target} import {alias.name}")

        def module_of(expr):
            """The project module an expression like `m` or `a.b` names through this file's imports, or None."""
            if isinstance(expr, ast.Name):
                return bound.get(expr.id)
            if isinstance(expr, ast.Attribute):
                parent = module_of(expr.value)
                if parent is not None and f"{parent}.{expr.attr}" in modules:
                    return f"{parent}.{expr.attr}"
            return None

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                target = module_of(node.value)
                if target is not None and not _may_touch_privates(name, target, is_package):
                    private.append(f"{rel}:{node.lineno}: {target}.{node.attr}")
        graph[name].discard(name)
    return modules, graph, private


def import_cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted, in sorted order."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def spec_references(root, packages=PACKAGES, needle="shared/specs"):
    """'path:line' of every line of every file under the packages (caches aside) that contains `needle`."""
    found = []
    for package in packages:
        for path in sorted((Path(root) / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            data = path.read_bytes()
            if needle.encode() in data:
                rel = path.relative_to(root).as_posix()
                lines = data.decode("utf-8", errors="replace").splitlines()
                found += [f"{rel}:{i}" for i, line in enumerate(lines, 1) if needle in line] or [rel]
    return found


# ----------------------------------------------------------------------------------------------------------------
# The checker on synthetic trees


def write_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cycles_on_a_small_graph():
    graph = {1: {2}, 2: {3}, 3: {1, 4}, 4: {5}, 5: {4}, 6: {6, 1}, 7: set()}
    assert import_cycles(graph) == [[1, 2, 3], [4, 5]]  # a self-import is no cycle; 6 and 7 are in none
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_imports_resolve_against_the_importing_module():
    assert resolve_relative("y", 1, "a.b.x", False) == "a.b.y"
    assert resolve_relative("", 1, "a.b.x", False) == "a.b"
    assert resolve_relative("y", 2, "a.b.x", False) == "a.y"
    assert resolve_relative("y", 1, "a.b", True) == "a.b.y"  # in a/b/__init__.py
    assert resolve_relative("z", 2, "a.b", True) == "a.z"
    assert resolve_relative("a.y", 0, "anything", False) == "a.y"


def test_checker_finds_the_known_cycle_and_private_imports(tmp_path):
    write_tree(tmp_path, {
        "p/__init__.py": "from p.sub import _impl\nfrom p.sub._impl import thing\n",
        "p/x.py": "import os\nfrom . import y\n\n\ndef f():\n    return y.g()\n",
        "p/y.py": "def g():\n    from p.x import _helper  # function level: still an edge, and private\n    return _helper\n",
        "p/z.py": "import p.sub._impl as impl\nimport p.y\nfrom p import y as why\n\n\n"
                  "def h():\n    return impl._secret, p.y._hidden, why._g, p.y.__name__, impl.public\n",
        "p/sub/__init__.py": "from ._impl import _thing, thing  # a package re-exporting its child\n",
        "p/sub/_impl.py": "from ..x import f\n_secret = 1\nthing = _thing = 2\n",
        "p/data/notes.txt": "not python\n",
        "q/__init__.py": "",
        "q/w.py": "from p.sub import _thing\nfrom numpy import _private_is_not_ours\n",
        "other/ignored.py": "from p.x import _nope\n",
    })
    modules, graph, private = import_graph(tmp_path, ("p", "q"))
    assert sorted(modules) == ["p", "p.sub", "p.sub._impl", "p.x", "p.y", "p.z", "q", "q.w"]
    assert graph["p.x"] == {"p.y"} and graph["p.y"] == {"p.x"}
    assert graph["p"] == {"p.sub._impl"}  # `from p.sub import _impl` is the module p.sub._impl
    assert graph["p.z"] == {"p.sub._impl", "p.y"} and graph["p.sub._impl"] == {"p.x"}
    assert graph["q.w"] == {"p.sub"}
    assert import_cycles(graph) == [["p.x", "p.y"]]
    assert sorted(private) == sorted([
        "p/y.py:2: from p.x import _helper",
        "p/z.py:7: p.sub._impl._secret",
        "p/z.py:7: p.y._hidden",
        "p/z.py:7: p.y._g",
        "q/w.py:1: from p.sub import _thing",
    ])


def test_a_clean_tree_passes(tmp_path):
    write_tree(tmp_path, {"p/__init__.py": "from .a import f\n", "p/a.py": "from p.b import g\nf = g\n",
                          "p/b.py": "import json\n\n\ndef g():\n    return json\n"})
    _, graph, private = import_graph(tmp_path, ("p",))
    assert import_cycles(graph) == [] and private == []
    assert spec_references(tmp_path, ("p",)) == []


def test_spec_references_are_found_in_any_file_but_caches(tmp_path):
    write_tree(tmp_path, {"p/__init__.py": "", "p/a.py": '"""Follows\n../shared/specs/x.md §1."""\n',
                          "p/assets/b.json": '{"see": "shared/specs"}', "p/__pycache__/a.cpython-312.pyc": "shared/specs"})
    assert spec_references(tmp_path, ("p",)) == ["p/a.py:2", "p/assets/b.json:1"]


# ----------------------------------------------------------------------------------------------------------------
# The project


def test_no_import_cycles_and_no_private_imports():
    _, graph, private = import_graph(ROOT)
    cycles = [" <-> ".join(component) for component in import_cycles(graph)]
    assert not cycles and not private, "\n".join(
        [f"{len(cycles)} import cycles:"] + [f"  cycle: {c}" for c in cycles]
        + [f"{len(private)} private imports:"] + [f"  private import: {p}" for p in private])


def test_no_file_refers_to_the_specs():
    found = spec_references(ROOT)
    assert not found, f"{len(found)} references to shared/specs, which does not ship:\n" + "\n".join(found)
