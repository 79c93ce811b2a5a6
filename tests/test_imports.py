"""Import rules: engine and app work without torch; imports only run down the layers; one import root."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from tests.paths import REPO

# The top-level folders, as the install names them (pyproject.toml's package-dir).
ROOTS = {"engine": "melsynth.engine", "app": "melsynth.app", "training": "melsynth.training", "cli": "melsynth.cli"}

# Each top-level package imports only those of a lower rank; equal ranks do not import each other.
TOP_RANK = {"melsynth.engine": 0, "melsynth.training": 1, "melsynth.app": 1, "melsynth.cli": 2}

# Inside a top-level package: its layers, bottom first. A module belongs to the longest unit that
# prefixes its name; it imports from its own unit or from units of lower layers, never from a
# unit of its own layer or above.
LAYERS = {
    "melsynth.engine": [
        ["melsynth.engine.errors", "melsynth.engine.atomic", "melsynth.engine.kernels", "melsynth.engine.argtypes"],
        ["melsynth.engine.dsp"],
        ["melsynth.engine.runtime"],
        ["melsynth.engine.device"],
        ["melsynth.engine.stream"],
        ["melsynth.engine.offline"],
        ["melsynth.engine.cli"],
        ["melsynth.engine"],  # __init__: the public surface
    ],
    "melsynth.training": [
        ["melsynth.training.features", "melsynth.training.onnx_export", "melsynth.training.gan"],
        ["melsynth.training.nn", "melsynth.training.corpus", "melsynth.training.portable"],
        ["melsynth.training.prior", "melsynth.training.vocoder"],
        ["melsynth.training.cli"],
        ["melsynth.training"],
    ],
    "melsynth.app": [
        ["melsynth.app.midi", "melsynth.app.recorder", "melsynth.app.xcb_libraries"],
        ["melsynth.app.presets"],
        ["melsynth.app.performance"],
        ["melsynth.app.widgets"],
        ["melsynth.app.main_window"],
        ["melsynth.app.cli"],
        ["melsynth.app"],
    ],
    "melsynth.cli": [["melsynth.cli.tree"], ["melsynth.cli.main"], ["melsynth.cli.__main__", "melsynth.cli"]],
}


def source_modules() -> dict[str, Path]:
    """``melsynth.…`` module name -> its file, for every module of the four top-level folders."""
    out = {}
    for folder, root in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([root, *parts])] = path
    return out


def imported_names(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports, at any depth of the code (lazy imports in functions too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """``melsynth`` module -> the ``melsynth`` modules it imports."""
    known = source_modules()
    return {name: {m for m in imported_names(name, path, known) if m.split(".")[0] == "melsynth"}
            for name, path in known.items()}


def unit_of(module: str) -> tuple[str, int] | None:
    """(the layer unit that holds ``module``, the unit's layer index in its top-level package);
    None for a module that no unit of ``LAYERS`` holds."""
    top = ".".join(module.split(".")[:2])
    if module == top:
        return top, len(LAYERS[top]) - 1
    best = None
    for index, units in enumerate(LAYERS[top]):
        for unit in units:
            if unit != top and (module == unit or module.startswith(unit + ".")) \
                    and (best is None or len(unit) > len(best[0])):
                best = (unit, index)
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that runs up a layer, sideways between units of one layer, or upward between packages."""
    bad = []
    for src, targets in sorted(graph.items()):
        src_top = ".".join(src.split(".")[:2])
        for dst in sorted(targets):
            dst_top = ".".join(dst.split(".")[:2])
            if dst_top not in TOP_RANK:
                bad.append(f"{src} -> {dst}: not a melsynth package")
            elif dst_top != src_top:
                if TOP_RANK[dst_top] >= TOP_RANK[src_top]:
                    bad.append(f"{src} -> {dst}: {dst_top} is not below {src_top}")
                elif src_top == "melsynth.app" and dst != "melsynth.engine":
                    bad.append(f"{src} -> {dst}: the app uses only melsynth.engine's public surface")
            elif unit_of(src) is None or unit_of(dst) is None:
                bad.append(f"{src} -> {dst}: {src if unit_of(src) is None else dst} is in no layer of LAYERS")
            else:
                (su, si), (du, di) = unit_of(src), unit_of(dst)
                if su != du and di >= si:
                    bad.append(f"{src} -> {dst}: {du} is not below {su}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among modules: strongly connected components larger than one module."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_imports_run_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_every_module_is_in_a_layer():
    """A new module or folder is placed in ``LAYERS`` (which says what it may import)."""
    assert [m for m in source_modules() if m.split(".")[1] in ("engine", "app", "training", "cli")
            and unit_of(m) is None] == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_rules_catch_an_upward_import_and_a_cycle():
    graph = {"melsynth.engine.dsp.features": {"melsynth.app.presets"},
             "melsynth.engine.device.output": {"melsynth.engine.stream.synth"},
             "melsynth.engine.stream.synth": {"melsynth.engine.device.output"},
             "melsynth.app.presets": {"melsynth.engine.stream.controls", "melsynth.training.gan"},
             "melsynth.training.gan": set()}
    bad = upward_imports(graph)
    assert any(b.startswith("melsynth.engine.dsp.features -> melsynth.app.presets") for b in bad)
    assert any(b.startswith("melsynth.engine.device.output -> melsynth.engine.stream.synth") for b in bad)
    assert any("public surface" in b for b in bad) and any("melsynth.training.gan" in b for b in bad)
    assert cycles(graph) == [["melsynth.engine.device.output", "melsynth.engine.stream.synth"]]


def test_no_generic_top_level_names_are_imported():
    """Code, tests and benchmarks import the project as ``melsynth.…``; benchmarks never import tests."""
    generic = {"engine", "app", "training", "cli"}
    bad = []
    for folder in ("engine", "app", "training", "cli", "tests", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                for name in names:
                    top = name.split(".")[0]
                    if top in generic or (top == "tests" and folder != "tests") or top == "benchmarks":
                        bad.append(f"{path.relative_to(REPO)}: {name}")
    assert bad == []


def test_pyproject_installs_every_package_folder():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {root: folder for folder, root in ROOTS.items()}
    folders = {".".join([ROOTS[p.parent.relative_to(REPO).parts[0]], *p.parent.relative_to(REPO).parts[1:]])
               for folder in ROOTS for p in (REPO / folder).rglob("__init__.py")}
    assert sorted(config["packages"]) == sorted(folders)


def test_engine_and_app_import_without_torch():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None
        sys.meta_path.insert(0, BlockTorch())
        import melsynth.engine, melsynth.app
        names = []
        for pkg in (melsynth.engine, melsynth.app):
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(m.name)
                names.append(m.name)
        for name in melsynth.engine.__all__:
            getattr(melsynth.engine, name)
        from melsynth.cli.main import build_parser
        build_parser().format_help()
        assert "torch" not in sys.modules
        print(len(names))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 30


def test_installed_import_root_is_melsynth_only(tmp_path):
    """From a folder outside the checkout, ``melsynth`` imports and the generic names do not."""
    code = textwrap.dedent("""
        import importlib
        import melsynth.engine, melsynth.app, melsynth.cli.main
        for name in ("engine", "app", "training", "cli"):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                continue
            raise SystemExit(f"{name} is importable")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
