"""The package's import graph: no module imports another that (directly or through others) imports it back, and
no import goes up a layer. Every import counts, the ones inside functions too (a lazy import is still a
dependency). The layer order is docs/architecture.md's Layers section."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgeens"

# Bottom to top: a module may import its own layer's and lower layers' modules, never a higher one.
LAYERS = (
    {"edgeens", "errors", "allocator", "files", "limits", "metrics", "devices", "workers", "rundir"},
    {"data", "models"},
    {"train", "compile"},
    {"search", "profile"},
    {"restore", "classical", "harness", "compare", "serve"},
    {"precision"},
    {"report"},
    {"run"},
    {"cli", "__main__"},
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeens"):
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    matches = [i for i, members in enumerate(LAYERS) if top in members]
    assert matches, f"{module} belongs to no layer: add its package to LAYERS (and docs/architecture.md's Layers)"
    return matches[0]


def test_no_import_goes_up_a_layer() -> None:
    upward = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in import_graph().items()
        for b in targets
        if layer(b) > layer(a)
    ]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


# Model code keeps its upstream signatures (Restormer's and MambaIR's hyper-parameters, mamba_ssm's
# selective_scan_fn and the scan kernels beside it), and a CLI command takes one parameter per option: what
# travels between steps is the request objects the commands build.
OWN_SIGNATURES = ("models", "cli")
MAX_PARAMETERS = 8


def parameter_counts() -> dict[str, int]:
    """Every function and method of the package outside OWN_SIGNATURES: `module.name` -> its parameters (self and
    cls not counted)."""
    counts = {}
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        if module.split(".")[1:2] and module.split(".")[1] in OWN_SIGNATURES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args
                names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
                counts[f"{module}.{node.name}"] = len(names) - (names[:1] in (["self"], ["cls"]))
    return counts


def test_requests_travel_down_whole_no_function_takes_more_than_eight_parameters() -> None:
    counts = parameter_counts()
    assert "edgeens.profile.host.profile_host" in counts and "edgeens.files.atomic_path" in counts  # it looks
    long = sorted(f"{name}: {count}" for name, count in counts.items() if count > MAX_PARAMETERS)
    assert not long, "pass a request (or a small object) instead of these parameters:\n" + "\n".join(long)
