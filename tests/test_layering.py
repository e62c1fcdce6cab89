"""The layering rule of docs/architecture.md, read from the code's own imports (every import,
also those inside functions): no import circles, ingest reaches the simulator only through
`simulator.intake`, and the pure cores import neither Django nor anything that does."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "config", "exchanges", "ingest", "monitoring", "simulator", "tools")
PURE = (
    "exchanges.books",
    "exchanges.double.feed_messages",
    "exchanges.fees",
    "exchanges.streams.l2",
    "ingest.detector",
    "ingest.detector_pass",
    "ingest.quotes",
    "ingest.spans",
    "ingest.intents",
    "ingest.shards",
    "simulator.core",
    "simulator.arrival_figures",
    "simulator.engine.wire",
    "simulator.run_settings",
)
FRAMEWORKS = {"django", "channels", "celery", "rest_framework", "drf_spectacular"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }


SOURCES = _sources()


def _imported_names(path: Path) -> set[str]:
    """Every module name an import statement of the file names (for `from a import b`: `a.b`
    when that is a module of ours, else `a`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in SOURCES else node.module)
    return names


def _ours(name: str) -> str | None:
    while name and name not in SOURCES:
        name = name.rpartition(".")[0]
    return name or None


IMPORTS = {
    module: {ours for name in _imported_names(path) if (ours := _ours(name)) and ours != module}
    for module, path in SOURCES.items()
}


def test_no_modules_import_each_other_in_a_circle():
    try:
        tuple(TopologicalSorter(IMPORTS).static_order())
    except CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}")


def test_ingest_reaches_the_simulator_only_through_its_intake():
    reaching = {
        (module, imported)
        for module, imported_modules in IMPORTS.items()
        if module.startswith("ingest")
        for imported in imported_modules
        if imported.startswith("simulator") and imported != "simulator.intake"
    }
    assert reaching == set()


@pytest.mark.parametrize("core", PURE)
def test_a_pure_core_imports_no_framework_not_even_through_another_module(core):
    seen, waiting = set(), [module for module in SOURCES if module == core or module.startswith(core + ".")]
    while waiting:
        module = waiting.pop()
        if module in seen:
            continue
        seen.add(module)
        frameworks = {name.split(".")[0] for name in _imported_names(SOURCES[module])} & FRAMEWORKS
        assert not frameworks, f"{module} (reached from {core}) imports {sorted(frameworks)}"
        waiting.extend(IMPORTS[module])
