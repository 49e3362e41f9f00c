"""The layout the project promises: four installed top-level packages, and no import cycles
between modules, counting imports inside functions."""

from __future__ import annotations

import ast
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("trainer", "components", "pipeline", "taxifare")


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package in (*PACKAGES, "bench"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: pathlib.Path, name: str, modules: dict[str, pathlib.Path]) -> set[str]:
    """Project modules `path` imports anywhere in it (module level, functions, TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def test_no_import_cycles_even_inside_functions():
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_errors_module_is_at_the_bottom():
    modules = _modules()
    assert _imports(modules["taxifare.errors"], "taxifare.errors", modules) == set()


def test_only_the_four_packages_are_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(p.rstrip("*") for p in include) == sorted(PACKAGES)
    assert config["project"]["scripts"]["taxifare"] == "taxifare.cli:main"
    stray = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name not in (*PACKAGES, "bench")]
    assert not stray, f"top-level packages outside the four (and bench/, which is not installed): {stray}"


def _shipped_and_bench() -> list[pathlib.Path]:
    return [p for package in (*PACKAGES, "bench") for p in sorted((ROOT / package).rglob("*.py"))]


def test_no_function_anywhere_is_longer_than_a_reader_can_hold():
    long = []
    for path in _shipped_and_bench():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_no_module_is_longer_than_a_reader_can_hold():
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in _shipped_and_bench()
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, "modules over 400 lines:\n" + "\n".join(long)


def test_pipeline_holds_pipelines_only():
    """pipeline/ is the pipelines and what they share; how they run lives in taxifare/runs/, submission in
    taxifare/cloud/ (the local runner, records, containers, watchdog, cron and schedules are not here)."""
    names = sorted(p.stem for p in (ROOT / "pipeline").glob("*.py"))
    assert names == ["__init__", "batch", "compiler", "images", "machines", "params", "training"]


def test_the_cli_builds_its_flags_without_importing_a_component_kfp_or_tensorflow():
    """Every option comes from the settings (trainer/config.py), which import none of them: `--help` is instant."""
    import subprocess
    import sys

    code = (
        "import sys; from taxifare.cli import build_parser; build_parser(); heavy = {m.split('.')[0] for m in "
        "sys.modules} & {'components', 'kfp', 'tensorflow', 'keras', 'pyarrow'}; print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
