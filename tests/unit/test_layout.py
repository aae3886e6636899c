"""The package's import graph: stages import only earlier stages and the shared modules, and nothing imports in a
circle. (Read from the source with `ast`, so an import inside a function counts too.)"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "whisper_finetuning"
# Each stage may import the stages before it. The shared modules sit below every stage and import none of them (nor
# the synthetic corpus); loading.py finds the offline copies of pretrained models. The support folders make the
# inputs of the first stage (offline model copies, synthetic corpora) and may use its audio module (data.audio) and
# nothing else of a stage.
SHARED = {"args", "cards", "entry_points", "figures", "files", "loading", "metrics"}
SUPPORT = {"offline", "synthetic"}
SUPPORT_MAY_USE = {"whisper_finetuning.data.audio"}
STAGES = ["data", "augmentation", "features", "training", "backends", "evaluation", "export", "inference", "app"]
ENTRY_POINTS = {"compare", "demo", "live_captions", "quickstart", "search"}  # may use everything


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The whisper_finetuning modules a file imports (relative imports resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("whisper_finetuning"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names
                             if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).with_suffix(".py").is_file()
                             or (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).is_dir())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("whisper_finetuning"))
    return found


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def test_the_package_has_folders_by_stage():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {"data", "features", "training", "evaluation", "offline", "synthetic"} <= folders


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_later_stage(module):
    source = area(module)
    for target in GRAPH[module]:
        destination = area(target)
        if destination in ("package", source) or source in ENTRY_POINTS:
            continue
        if source in SHARED:
            assert destination in SHARED | {"offline"}, f"{module} (shared) imports {target} ({destination})"
        elif source in SUPPORT:
            assert destination in SHARED | SUPPORT or target in SUPPORT_MAY_USE, f"{module} imports {target}"
        elif source in STAGES:
            allowed = set(STAGES[:STAGES.index(source)]) | SHARED | SUPPORT
            assert destination in allowed, f"{module} ({source}) imports {target} ({destination})"


def test_no_import_cycles():
    modules = {m: {t for t in targets if t in GRAPH and t != m} for m, targets in GRAPH.items()}
    state = {}

    def visit(module, path):
        state[module] = "visiting"
        for target in modules[module]:
            if state.get(target) == "visiting":
                raise AssertionError("import cycle: " + " -> ".join(path + [module, target]))
            if target not in state:
                visit(target, path + [module])
        state[module] = "done"

    for module in modules:
        if module not in state:
            visit(module, [])


def test_importing_a_module_runs_nothing():
    """Module bodies only import and define: registering the CPU attention, loading files or reading the
    environment happens when a function is called (so importing a module changes no global registry)."""
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            main_guard = isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
            assert isinstance(node, allowed) or docstring or main_guard, f"{path}:{node.lineno} runs at import"
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
                called = ast.unparse(node.value.func)
                assert called in SAFE_CALLS or called[:1].isupper(), f"{path}:{node.lineno} calls {called}"


# Calls allowed in module-level assignments (building constants); classes (capitalised) are fine too.
SAFE_CALLS = {"logging.getLogger", "re.compile", "set", "list", "float", "pyarrow.schema", "ctypes.CFUNCTYPE",
              "threading.Lock", "dict", "frozenset", "tuple", "np.dtype", "struct.Struct"}
