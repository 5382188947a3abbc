"""The house plan holds: no module of the package imports itself back, directly or through others.

The layers between folders are import-linter contracts (``pyproject.toml``, run by ``make test``);
this test reads every import of every module, those under ``TYPE_CHECKING`` and inside functions
too, and fails on any cycle, naming it. It also holds the size rule: a module of the package above
:data:`SIZE_LIMIT` lines says why in its docstring, in a paragraph starting :data:`SIZE_REASON`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mqtt_kafka_sync"
SIZE_LIMIT = 400
"""Lines a module may have without giving a reason (the plan aims at ~350; the slack is for growth
that does not yet call for a split)."""
SIZE_REASON = "Why over 350 lines:"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mqtt_kafka_sync"):
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
                edges[name].update(t for t in targets if t in modules and t != name)
            elif isinstance(node, ast.Import):
                edges[name].update(a.name for a in node.names if a.name in modules and a.name != name)
    return edges


def _cycles(edges: dict[str, set[str]], nodes: list[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back() -> None:
    modules = _modules()
    assert len(modules) > 50
    assert _cycles(_imports(modules), sorted(modules)) == []


def _oversized_without_a_reason(modules: dict[str, Path]) -> list[str]:
    found = []
    for name, path in sorted(modules.items()):
        text = path.read_text()
        lines = text.count("\n")
        if lines <= SIZE_LIMIT:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.startswith(SIZE_REASON) for line in docstring.splitlines()):
            found.append(f"{name}: {lines} lines, and no docstring line starting {SIZE_REASON!r}")
    return found


def test_no_module_is_over_the_size_limit_without_saying_why() -> None:
    """Split a module that grew past the limit along a real seam, or say in its docstring why not."""
    assert _oversized_without_a_reason(_modules()) == []


def test_the_size_check_finds_a_long_module_without_a_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * SIZE_LIMIT
    (tmp_path / "long.py").write_text(f'"""A long module."""\n{body}')
    (tmp_path / "reasoned.py").write_text(f'"""A long module.\n\n{SIZE_REASON} one table."""\n{body}')
    (tmp_path / "short.py").write_text('"""A short module."""\nx = 1\n')
    modules = {path.stem: path for path in tmp_path.glob("*.py")}
    assert _oversized_without_a_reason(modules) == [
        f"long: {SIZE_LIMIT + 1} lines, and no docstring line starting {SIZE_REASON!r}"
    ]


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set, {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert _cycles(edges, ["a", "b", "c", "d"]) == [["a", "b", "c"]]


def test_the_local_stack_needs_nothing_outside_the_package() -> None:
    """``stack``, ``demo`` and the test fixtures work from a plain ``pip install``: every broker input
    ships under devstack/brokers/ (package data), and the demo's packaged connector is the checkout's."""
    from mqtt_kafka_sync.devstack import paths  # noqa: PLC0415

    for parts in [
        ("kafka", "pom.xml"),
        ("kafka", "log4j2.yaml"),
        ("mosquitto", "mosquitto.conf"),
        ("hivemq", "pom.xml"),
        ("hivemq", "Launcher.java"),
        ("hivemq", "config.xml"),
        ("hivemq", "logback.xml"),
    ]:
        assert paths.broker_file(*parts).is_file()
    repo = PACKAGE.parent
    packaged = paths.broker_file(paths.EXAMPLE_CONNECTOR).read_text()
    assert packaged == (repo / "connectors" / paths.EXAMPLE_CONNECTOR).read_text()
    pyproject = (repo / "pyproject.toml").read_text()
    assert '"devstack/brokers/*", "devstack/brokers/*/*"' in pyproject
    devstack_sources = "".join(p.read_text() for p in (PACKAGE / "devstack").glob("*.py"))
    assert "compose/" not in devstack_sources.replace("docker compose", "")


UNIT_TESTS = Path(__file__).resolve().parent
NOT_A_PACKAGE_FOLDER = {
    "deploy": "tests of compose/: the Helm chart, the manifests, the image, the secured stack"
}


def test_the_unit_tests_mirror_the_package() -> None:
    # tests/unit/<folder>/ tests mqtt_kafka_sync/<folder>/; a folder of tests that names none says
    # what it tests instead, here.
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    test_folders = {p.name for p in UNIT_TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    strays = test_folders - folders - set(NOT_A_PACKAGE_FOLDER)
    assert not strays, f"tests/unit folders that mirror no package folder: {sorted(strays)}"
    modules_at_top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    for path in UNIT_TESTS.glob("test_*.py"):
        assert path.stem == "test_house_plan" or any(m in path.stem for m in modules_at_top), (
            f"{path.name} tests no top-level module; move it under tests/unit/<folder>/"
        )
