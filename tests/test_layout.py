"""The package's layout holds: one folder per concern, no import running upward, no oversized module.

The layers, lowest first (``lcnet_yolo/__init__.py`` says the same): a module may import from its own layer and
the ones below it, never from a higher one, and nothing imports the package's facade (``lcnet_yolo/__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lcnet_yolo"
LAYERS = (
    ("lcnet_yolo.version", "lcnet_yolo.plugin.compat", "lcnet_yolo.plugin"),
    ("lcnet_yolo.nn",),
    ("lcnet_yolo.io",),
    ("lcnet_yolo.data",),
    ("lcnet_yolo.plugin.register", "lcnet_yolo.plugin.trainers"),
    ("lcnet_yolo.formats", "lcnet_yolo.quantize", "lcnet_yolo.slicing"),
    ("lcnet_yolo.benchmark",),
    ("lcnet_yolo.cli", "lcnet_yolo.__main__"),
)
MAX_LINES = 420  # "about 400": a module longer than this is doing more than one thing


def module_name(path: Path) -> str:
    parts = ["lcnet_yolo", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index of the most specific prefix in :data:`LAYERS` that names ``module`` (or its package)."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer of tests/test_layout.py")
    return best


def our_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every lcnet_yolo module ``path`` imports, at the top or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "lcnet_yolo"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "lcnet_yolo":  # `from lcnet_yolo import formats`: a submodule, or the facade
                for alias in node.names:
                    is_module = (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").is_file()
                    found.append((node.lineno, f"lcnet_yolo.{alias.name}" if is_module else "lcnet_yolo"))
            elif node.module.startswith("lcnet_yolo."):
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_every_module_belongs_to_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


def upward_imports(module: str, path: Path) -> list[str]:
    """One line per import in ``path`` (the source of ``module``) of a higher layer or of the package facade."""
    lines = []
    for line, target in our_imports(path):
        if target == "lcnet_yolo":
            lines.append(f"line {line}: {module} imports the package facade (lcnet_yolo/__init__)")
        elif layer_of(target) > layer_of(module):
            lines.append(
                f"line {line}: {module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
            )
    return lines


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_runs_upward(path):
    upward = upward_imports(module_name(path), path)
    assert not upward, "\n".join(upward)


def test_no_module_is_oversized():
    long = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_layer_checker_catches_upward_imports(tmp_path):
    source = tmp_path / "weights.py"
    source.write_text(
        "import lcnet_yolo\nfrom lcnet_yolo.nn import PPLCNet\n\ndef f():\n    from lcnet_yolo.cli import main\n"
    )
    found = upward_imports("lcnet_yolo.io.weights", source)
    assert found == [
        "line 1: lcnet_yolo.io.weights imports the package facade (lcnet_yolo/__init__)",
        "line 5: lcnet_yolo.io.weights (layer 2) imports lcnet_yolo.cli (layer 7)",
    ]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> modules it imports), each once, as a path that ends where it starts."""
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                cycle = path[path.index(target) :]
                start = cycle.index(min(cycle))
                key = tuple(cycle[start:] + cycle[:start])
                if key not in done:
                    done.add(key)
                    cycles.append([*key, key[0]])
            elif target not in finished:
                visit(target, [*path, target])
        finished.add(module)

    finished: set[str] = set()
    for module in sorted(graph):
        if module not in finished:
            visit(module, [module])
    return cycles


def test_no_two_modules_import_each_other_even_inside_functions():
    known = {module_name(p) for p in MODULES}
    graph = {module_name(p): {t for _, t in our_imports(p) if t in known} for p in MODULES}
    # a package's __init__ re-exports its modules; a module reaching its own package through it is not a cycle here
    graph = {m: {t for t in targets if t != m and not m.startswith(t + ".")} for m, targets in graph.items()}
    cycles = import_cycles(graph)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_cycle_checker_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


CLI_ENTRY_POINTS = {"main"}  # every command's module has its own


def test_each_public_function_and_class_is_defined_once():
    places: dict[str, list[str]] = {}
    for path in MODULES:
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                places.setdefault(node.name, []).append(str(path.relative_to(SRC)))
    twice = {name: where for name, where in places.items() if len(where) > 1 and name not in CLI_ENTRY_POINTS}
    assert not twice, twice


def test_model_names_and_image_files_follow_one_rule_each():
    from lcnet_yolo.io.paths import IMAGE_SUFFIXES, model_yaml_name
    from lcnet_yolo.quantize import calibration

    assert [model_yaml_name(n) for n in ("yolov8n", "yolov8n-pplcnet.yaml", "own.yml")] == [
        "yolov8n.yaml",
        "yolov8n-pplcnet.yaml",
        "own.yml",
    ]
    assert calibration.IMAGE_SUFFIXES is IMAGE_SUFFIXES
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff"} <= IMAGE_SUFFIXES
