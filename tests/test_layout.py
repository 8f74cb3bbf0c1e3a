"""The package layout holds: imports flow one way (space -> blocks -> search -> CLI), rooms inside
``search/`` do not import back up, there is no import cycle, and imports inside functions are
kept for optional heavy dependencies only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("space", "blocks", "search", "seesaw_cli")
# Optional, heavy dependencies that may be imported where they are used (with a comment there);
# torchvision: only the CIFAR loader needs it, and its import costs every command seconds.
# torchvision (only the CIFAR loader) and scipy.stats (only the vote ranks) cost seconds of start-up.
# torch.utils.flop_counter imports triton (0.15 s), needed only to count a whole module.
# Our torch side, so that --help, --references and --describe start without torch (1.6-2.5 s):
# blocks.counting (only for a part new to the machine's count file) and seesaw_cli.commands
# (a search, an export, a final training).
DEFERRED_OK = ("ray", "plotly", "kaleido", "matplotlib", "optuna_dashboard", "torchvision", "scipy",
               "torch.utils.flop_counter", "blocks.counting", "seesaw_cli.commands")
# What each part may import of ours (prefix match); the order of the flow of a spec.
ALLOWED = {
    "space": ("space",),
    "blocks": ("space", "blocks"),
    "search": (),
    "search.errors": (),
    "search.choices": (),
    "search.files": (),
    "search.provenance": (),
    "search.faults": (),
    "search.train": ("space", "blocks", "search.choices", "search.errors", "search.files", "search.provenance", "search.train"),
    "search.config": ("space", "blocks", "search.choices", "search.errors", "search.train", "search.engine.zero_cost",
                      "search.engine.objectives", "search.engine.attributes", "search.config"),
    "search.engine": ("space", "blocks", "search.choices", "search.errors", "search.files", "search.provenance", "search.faults", "search.train",
                      "search.config", "search.engine"),
    "search.results": ("space", "blocks", "search.errors", "search.files", "search.provenance", "search.train",
                       "search.config", "search.engine", "search.results"),
    "search.executors": ("space", "blocks", "search"),
    "search.runner": ("space", "blocks", "search"),
    "seesaw_cli": ("space", "blocks", "search", "seesaw_cli"),
}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def resolve(node: ast.ImportFrom | ast.Import, module: str, names: set[str]) -> list[str]:
    """Our modules an import statement loads (``from pkg import mod`` counts as pkg.mod)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if ours(a.name)]
    if node.level:  # relative imports are not used in this project; treat as ours
        return [module]
    base = node.module or ""
    if not ours(base):
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]


def top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Import statements run at import time (outside functions, outside ``if TYPE_CHECKING``)."""
    found = []

    def walk(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for h in node.handlers:
                    walk(h.body)
    walk(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    names = set(mods)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        edges[name] = {t for node in top_level_imports(tree) for t in resolve(node, name, names) if t != name}
    return edges


def test_rooms_import_only_downstream():
    bad = []
    for module, targets in graph().items():
        rule = max((k for k in ALLOWED if module == k or module.startswith(k + ".")), key=len)
        for target in targets:
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[rule]):
                bad.append(f"{module} imports {target}")
    assert not bad, bad


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # a package's __init__ importing its own modules is not a cycle of the design
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt in edges and nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_inside_functions_are_optional_heavy_dependencies_only(package):
    bad = []
    for name, path in modules().items():
        if not name.startswith(package):
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    heads = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    heads = [node.module or ""]
                else:
                    continue
                bad += [f"{name}:{node.lineno} imports {h}" for h in heads
                        if not any(h == ok or h.startswith(ok + ".") for ok in DEFERRED_OK)]
    assert not bad, bad


def test_space_does_not_need_torch():
    for name, path in modules().items():
        if name.startswith("space"):
            for node in top_level_imports(ast.parse(path.read_text())):
                heads = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(h.split(".")[0] == "torch" for h in heads), name
