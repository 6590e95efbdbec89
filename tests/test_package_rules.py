"""Rules read off the source itself: the packages import downwards only, no two modules import each other,
and nothing unsafe is loaded.

Layers, bottom to top (a module may import its own package and any package below it):

    errors -> console -> runfolder -> data -> metrics -> models -> tasks -> config -> training -> inference -> evaluation -> export
    -> serve -> scale -> recipes -> cli

Security: user folders are read as safetensors, JSON and YAML only. `torch.load` always passes
`weights_only=True`; YAML uses the safe loader; no remote code, no pickle, no shell, no eval.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertx"
# export (ONNX/OpenVINO, int8, merged adapters) and serve (the HTTP server) sit below recipes: `bertx plan`
# ships what it trains. serve builds on export (an adapter bank becomes one graph when it starts). scale (Ray)
# runs the predictors on a cluster and labels distillation data for the recipes.
LAYERS = [
    "errors",
    "console",
    "runfolder",
    "data",
    "metrics",
    "models",
    "tasks",
    "config",
    "training",
    "inference",
    "evaluation",
    "export",
    "serve",
    "scale",
    "recipes",
    "cli",
    "__init__",
]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts[0], ast.parse(path.read_text(encoding="utf-8"))


def bertx_imports(tree: ast.AST):
    """(line, imported bertx unit) for every import in a module, module-level or inside a function."""
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "bertx":
                continue
            if len(parts) > 1:
                yield node.lineno, parts[1]
            elif isinstance(node, ast.ImportFrom):  # `from bertx import runfolder`: the sub-package, else the public API
                for alias in node.names:
                    unit = alias.name if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file() else "__init__"
                    yield node.lineno, unit
            else:
                yield node.lineno, "__init__"


def test_every_unit_has_a_layer():
    units = {unit for _, unit, _ in modules()}
    assert units <= set(LAYERS), f"declare the layer of {sorted(units - set(LAYERS))} in LAYERS"


def test_packages_import_downwards_only():
    upward = []
    for path, unit, tree in modules():
        for line, target in bertx_imports(tree):
            if LAYERS.index(target) > LAYERS.index(unit):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {unit} imports {target}")
    assert not upward, "imports going up the layers:\n" + "\n".join(upward)


def module_graph() -> dict[str, set[str]]:
    """bertx module -> the bertx modules it imports (at module level or inside functions). An import of a
    package's name counts as its `__init__`, except from inside that package (its own re-exports)."""
    names = {".".join(("bertx", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                wanted = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            else:
                continue
            for target in wanted:
                while target and target not in names:  # `bertx.x.y.attr` -> the module bertx.x.y
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def test_no_module_imports_a_module_that_imports_it():
    """Within a package too: two modules that import each other (even inside a function) are one module
    split in two, and the first thing a newcomer trips on."""
    graph, cycles, done = module_graph(), [], set()

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in done:
                visit(target, path + [target])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def _call_name(node: ast.Call) -> str:
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")  # `model.to(d).eval()` is no call of eval
    return ".".join(reversed(parts))


def _keyword(node: ast.Call, name: str):
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else "<expr>"
    return None


def test_no_unsafe_loading_or_execution():
    forbidden_calls = {
        "eval",
        "exec",
        "pickle.load",
        "pickle.loads",
        "yaml.load",
        "yaml.unsafe_load",
        "os.system",
        "os.popen",
        "subprocess.run",
        "subprocess.Popen",
        "subprocess.call",
        "subprocess.check_output",
        "marshal.loads",
    }
    problems = []
    for path, _, tree in modules():
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name in ("pickle", "subprocess", "marshal", "dill") for a in node.names):
                problems.append(f"{where}:{node.lineno}: imports {[a.name for a in node.names]}")
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in forbidden_calls:
                problems.append(f"{where}:{node.lineno}: calls {name}")
            if name.endswith("torch.load") and _keyword(node, "weights_only") is not True:
                problems.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if _keyword(node, "trust_remote_code") not in (None, False):
                problems.append(f"{where}:{node.lineno}: trust_remote_code")
            if _keyword(node, "shell") not in (None, False):
                problems.append(f"{where}:{node.lineno}: shell=True")
            if name.endswith("np.load") and _keyword(node, "allow_pickle") not in (None, False):
                problems.append(f"{where}:{node.lineno}: np.load with allow_pickle")
    assert not problems, "\n".join(problems)


def test_the_scan_would_catch_a_forbidden_call():
    """The checks above are not vacuous: the same scan flags a sample of what it forbids."""
    sample = ast.parse("import torch, yaml\ntorch.load('x.pt')\nyaml.load(text)\nAutoModel.from_pretrained(p, trust_remote_code=True)\n")
    calls = [n for n in ast.walk(sample) if isinstance(n, ast.Call)]
    assert [_call_name(c) for c in calls] == ["torch.load", "yaml.load", "AutoModel.from_pretrained"]
    assert _call_name(ast.parse("model.to(d).eval()").body[0].value) == "<expr>.eval"
    assert _keyword(calls[0], "weights_only") is None and _keyword(calls[2], "trust_remote_code") is True
