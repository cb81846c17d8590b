"""The package layout is the architecture: each subsystem a package, dependencies pointing one way.

Layers, bottom to top (README, "Architecture"): the agent-side scripts, configuration, the system helpers,
downloads, the doctor, the CARLA lifecycle, then provisioning and the run (peers: neither imports the other),
then the CLI. A module may import its own package or a lower layer, never a higher one or a peer; every
import counts, lazy ones inside functions and type-only ones included. At module scope, without the
type-only imports, no modules import each other in a circle.

The graph is read from the source with ast, so a test here can fail on a tree it did not write; the first
tests prove that on small made-up trees.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parent.parent / "simdoctor"
ROOT = "simdoctor"
TOP = "cli"  # simdoctor/cli.py, simdoctor/__main__.py and simdoctor/entry.py (the console entry point)
LAYERS: dict[str, int] = {
    "root": 0,  # simdoctor/__init__.py: the version, nothing else
    "scripts": 0,
    "config": 1,
    "system": 2,
    "download": 3,
    "doctor": 4,
    "carla": 5,
    "provision": 6,
    "run": 6,
    TOP: 7,
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    module_scope: bool  # runs when the module is imported (not inside a function)
    type_only: bool  # under `if TYPE_CHECKING:`


def modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(package: Path) -> list[Import]:
    """Every import of one of the package's modules, resolved to the module it names."""
    known = modules(package)
    found: list[Import] = []

    def target_of(name: str) -> Optional[str]:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(source: str, node: ast.AST, in_function: bool, type_only: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(source, child, in_function, True)
            for child in node.orelse:
                visit(source, child, in_function, type_only)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{source}:{node.lineno}: relative import; the layer test reads absolute ones")
        for name in names:
            if name == ROOT or name.startswith(ROOT + "."):
                target = target_of(name)
                if target and target != source:
                    found.append(Import(source, target, node.lineno, not in_function, type_only))
        for child in ast.iter_child_nodes(node):
            visit(source, child, in_function, type_only)

    for name, path in sorted(known.items()):
        visit(name, ast.parse(path.read_text(encoding="utf-8"), str(path)), False, False)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    return TOP if parts[1] in ("cli", "__main__", "entry") else parts[1]


def layer_violations(found: list[Import]) -> list[str]:
    bad = []
    for i in found:
        source, target = package_of(i.source), package_of(i.target)
        if source == target:
            continue
        if source not in LAYERS or target not in LAYERS:
            bad.append(f"{i.source}:{i.line}: {source if source not in LAYERS else target} is in no layer")
        elif LAYERS[target] >= LAYERS[source]:
            bad.append(f"{i.source}:{i.line} imports {i.target}: {source} may not import {target}")
    return bad


def cycles(found: list[Import]) -> list[list[str]]:
    """Groups of modules whose module-scope runtime imports reach each other (Tarjan's strongly connected parts)."""
    graph: dict[str, set[str]] = {}
    for i in found:
        if i.module_scope and not i.type_only:
            graph.setdefault(i.source, set()).add(i.target)
            graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / ROOT


def test_the_checker_finds_an_upward_import_a_peer_import_and_a_lazy_one(tmp_path: Path) -> None:
    package = write_tree(
        tmp_path,
        {
            "__init__.py": "",
            "system/__init__.py": "",
            "system/procs.py": "from simdoctor.doctor import findings\n",
            "doctor/__init__.py": "",
            "doctor/findings.py": "from simdoctor.system import procs\n",
            "run/__init__.py": "",
            "run/report.py": "def f():\n    from simdoctor.provision import setup\n",
            "provision/__init__.py": "",
            "provision/setup.py": "from simdoctor.run.report import f\n",
            "extra/__init__.py": "",
            "extra/thing.py": "import simdoctor.system.procs\n",
        },
    )
    bad = layer_violations(imports(package))
    assert "simdoctor.system.procs:1 imports simdoctor.doctor.findings: system may not import doctor" in bad
    assert "simdoctor.run.report:2 imports simdoctor.provision.setup: run may not import provision" in bad
    assert "simdoctor.provision.setup:1 imports simdoctor.run.report: provision may not import run" in bad
    assert "simdoctor.extra.thing:1: extra is in no layer" in bad
    assert len(bad) == 4  # doctor -> system is allowed


def test_the_checker_finds_a_module_scope_cycle_but_not_a_lazy_or_type_only_one(tmp_path: Path) -> None:
    package = write_tree(
        tmp_path,
        {
            "__init__.py": "",
            "doctor/__init__.py": "",
            "doctor/a.py": "from simdoctor.doctor import b\n",
            "doctor/b.py": "import simdoctor.doctor.c\n",
            "doctor/c.py": "from simdoctor.doctor.a import x\n",
            "doctor/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from simdoctor.doctor import e\n",
            "doctor/e.py": "from simdoctor.doctor import d\ndef f():\n    from simdoctor.doctor import a\n",
        },
    )
    assert cycles(imports(package)) == [["simdoctor.doctor.a", "simdoctor.doctor.b", "simdoctor.doctor.c"]]


def test_no_module_imports_a_higher_layer_or_a_peer() -> None:
    assert layer_violations(imports(PACKAGE)) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert cycles(imports(PACKAGE)) == []


def test_every_subsystem_is_a_package_and_nothing_else_is_loose() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py", "entry.py"]
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(name for name in LAYERS if name not in ("root", TOP))


def test_every_module_opens_with_a_docstring_saying_what_it_holds() -> None:
    missing = [
        name
        for name, path in sorted(modules(PACKAGE).items())
        if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    ]
    assert missing == []


def test_the_agent_side_scripts_import_nothing_of_simdoctor() -> None:
    """They run in the agent's Python 3.8 (or in a bare subprocess), where simdoctor is not installed."""
    outside = [i for i in imports(PACKAGE) if package_of(i.source) == "scripts" != package_of(i.target)]
    assert outside == []
