"""The layout's rules: no import cycles between lmgan's modules (counting the imports inside
functions, which only defer a cycle), and the low-level modules stay below the training loop."""

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    """module → the lmgan modules it imports anywhere in its text."""
    files = {}
    for f in (ROOT / "lmgan").rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    g = {module: set() for module in files}
    for module, f in files.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                continue
            g[module] |= {t for t in targets if t in files and t != module}
    return g


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for t in g[todo.pop()] - seen:
            seen.add(t)
            todo.append(t)
    return seen


def test_no_import_cycles():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_low_level_modules_do_not_reach_training_or_the_sweep():
    """Metrics, rendering, evaluation and data never import the training loop,
    and nothing outside lmgan.sweep imports the sweep but the CLI's sweep and report commands
    and the benchmarks (lmgan.bench: the sweep overhead and the schedulers' comparison)."""
    g = import_graph()
    for module in ("lmgan.metrics.evaluator", "lmgan.render", "lmgan.evaluate", "lmgan.data.videos", "lmgan.data.fetch", "lmgan.device", "lmgan.pixels"):
        reach = reachable(g, module)
        assert "lmgan.training.loop" not in reach and "lmgan.cli" not in reach, (module, sorted(reach))
    outside = [(a, b) for a in g for b in g[a] if b.startswith("lmgan.sweep")   # the benchmarks run sweeps
               and not a.startswith(("lmgan.sweep", "lmgan.bench."))]
    assert set(outside) == {("lmgan.cli", "lmgan.sweep.report"), ("lmgan.cli", "lmgan.sweep.arguments"), ("lmgan.cli", "lmgan.sweep.driver")}, outside


def test_test_files_import_no_test_file():
    """Tests share helpers through tests/support.py (and fixtures through conftest.py), never by
    importing another test file or conftest: pytest already imported those under their own
    names, so an import runs a second copy (its module-level fixtures and marks included). The
    helpers are imported as `support`, the name conftest uses, so there is one copy of them."""
    found = []
    for f in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "tests"]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[-1].startswith("test_") or parts[-1] == "conftest" or name == "tests.support":
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not found, found
