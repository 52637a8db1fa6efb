"""The package's layers hold: no import cycle, no feature importing one above it, and no Triton
model's stub loading another feature's code (an image model's stub loads no video module).

Layers, bottom up: the contract (and the model families sized from it), errors and metric
names; the runtime (how ONNX files run); image; video (builds on image); the clients. The
repository plan depends only on the contract and the families; the tools (cli, batch, bench, ui,
connect, cluster, export) sit on top and may use anything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "sam2_triton"

BOTTOM = {"contract", "families", "errors", "metrics"}
#: package (first name below sam2_triton) -> the packages it may import besides itself
ALLOWED = {
    "contract": set(),
    "families": {"contract"},
    "errors": set(),
    "metrics": {"errors"},
    "runtime": {"contract", "errors"},
    "weights": set(),
    "repository": {"contract", "families"},
    "image": BOTTOM,
    "concepts": BOTTOM | {"runtime", "image"},  # SAM 3: phrases, its graphs, masks as image's
    "video": BOTTOM | {"runtime", "image"},
    "clients": BOTTOM | {"image", "video"},
    "server": {"metrics", "errors"},  # both standard library only, as the GPU image needs
    "triton_models": BOTTOM | {"runtime", "image", "video", "concepts", "repository"},
    "web": set(),  # the gateways' shared aiohttp helpers
}
TOOLS = {"cli", "batch", "bench", "ui", "connect", "cluster", "export", "__init__", "__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str], package: str) -> set[str]:
    """Modules of ours imported anywhere in ``tree`` (functions included), except under
    ``if TYPE_CHECKING:``; ``from package import module`` counts as the module, and a relative
    import is resolved against ``package`` (the importing module's)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            if base.split(".")[0] == "sam2_triton":
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sam2_triton")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    # export/ installs as sam2_triton.export
    paths.update({f"sam2_triton.export.{p.stem}": p for p in (ROOT / "export").glob("*.py")})
    modules = set(paths)
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = _imports(ast.parse(path.read_text()), modules, package)
        graph[name] = {m for m in found if m != name}
    return graph


def _feature(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep in graph and dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_no_feature_imports_a_layer_above_it():
    wrong = []
    for module, deps in sorted(import_graph().items()):
        feature = _feature(module)
        if feature in TOOLS:
            continue
        assert feature in ALLOWED, f"{module}: package {feature!r} has no place in the layers"
        for dep in sorted(deps):
            target = _feature(dep)
            if target != feature and target not in ALLOWED[feature]:
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_root_holds_only_the_bottom_layer():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert loose == BOTTOM, "modules beside the packages: put each in its feature's package"


# What each Triton model's stub loads: (module under triton_models, features it must not load).
STUBS = {
    "segment": ("video", "concepts", "clients", "repository"),
    "session": ("video", "concepts", "clients", "repository"),
    "automatic": ("video", "concepts", "clients", "repository"),
    "preprocess": ("video", "concepts", "clients", "repository"),
    "postprocess": ("video", "concepts", "clients", "repository"),
    "onnx_model": ("video", "concepts", "clients", "repository"),
    "video": ("concepts", "clients"),
    "video_stream": ("concepts", "clients"),
    "video_sessions": ("concepts", "clients"),
    "concepts": ("video", "clients", "repository"),
}


def test_every_python_model_of_both_targets_is_checked():
    from sam2_triton.repository.model_plan import TARGETS
    from sam2_triton.repository.options import ServingOptions
    from sam2_triton.repository.plan import repository_plan

    served = {
        plan.python_module
        for target in TARGETS
        for plan in repository_plan(target, ServingOptions(video=True, concepts=True))
        if plan.python_module
    }
    assert served == set(STUBS)


def test_relative_imports_count():
    graph = import_graph()
    assert "sam2_triton.weights.variants" in graph["sam2_triton.weights.checkpoints"]


def test_a_models_stub_loads_no_other_features_code():
    """Import every stub's module as the Python backend does (with Triton's utilities faked)
    and list what it loaded: image models load nothing of video, no model loads a client."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests import fake_pb_utils\n"
        "sys.modules['triton_python_backend_utils'] = fake_pb_utils\n"
        "import importlib\n"
        "loaded = {}\n"
        f"for name in {sorted(STUBS)!r}:\n"
        "    importlib.import_module('sam2_triton.triton_models.' + name)\n"
        "    loaded[name] = sorted(m for m in sys.modules if m.startswith('sam2_triton.'))\n"
        "    for m in [m for m in sys.modules if m.startswith('sam2_triton.')]:\n"
        "        del sys.modules[m]\n"
        "print(json.dumps(loaded))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    for stub, forbidden in STUBS.items():
        features = {_feature(m) for m in loaded[stub]}
        assert not features & set(forbidden), f"{stub}'s stub loads {features & set(forbidden)}"
    assert "sam2_triton.video.service" in loaded["video_sessions"]  # the check sees imports
