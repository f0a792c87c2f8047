"""The package's boundaries, read from the source (AST) so CI fails the day one is crossed.

Over the product folders (``sdk/`` -> ``flowmason``, ``kernel/`` ->
``flowmason.kernel``, ``plugins/`` -> ``flowmason.plugins``, ``functions/``
-> ``flowmason.functions``), counting every import, relative ones too,
inside functions too:

(a) the kernel imports no plugin and nothing from ``flowmason.functions``:
    it is what every process loads, and plugins are chosen per process;
(b) a plugin imports from another plugin only that plugin's public names,
    ``from flowmason.plugins.X import name`` with ``name`` in X's ``__all__``,
    never a submodule (``flowmason.plugins.X.sub``) nor the package object;
(c) no product module imports ``tests`` or ``pytest``; ``moto`` (a
    development server) only inside a function of the local-stack launcher,
    under an ``except ImportError`` that says which extra to install;
(d) plugins do not import ``flowmason.functions`` (the Lambda handlers);
(e) a plugin that imports another one declares it, in ``REQUIRES`` (cannot
    work without) or ``USES`` (optional: used when loaded);
(f) a public name is not also a submodule's name (once the submodule is
    imported, ``from X import name`` gets the module instead);
(g) no test harness ships: no ``testing.py``/``fixtures.py`` in product
    folders, and the built wheel holds neither those nor ``tests/``.

``ALLOWED`` lists the crossings that are known and being removed; an entry
that is no longer needed fails too, so the list only shrinks.
"""
from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# source folder -> import name (setup.py's package-dir mapping)
FOLDERS = {"sdk": "flowmason", "kernel": "flowmason.kernel", "plugins": "flowmason.plugins",
           "functions": "flowmason.functions"}
PLUGINS = "flowmason.plugins"
FUNCTIONS = "flowmason.functions"

# Known crossings, (importing module, imported module), each being removed by its owner; empty it as they go.
ALLOWED = {
    # (`fm test` importing core_cli's loader was the other case; the kernel's runner replaced it;
    # the HTTP API and time travel's routes now use the durable engine's plugin); `fm serve --aws-local`
    # starts the local stack of the Lambda handlers
    ("flowmason.plugins.http_api.serve", "flowmason.functions.local_stack"),
}

# where moto may be imported: the launcher behind `fm serve --aws-local`
MOTO_HOMES = {"flowmason.functions.moto_server"}
HARNESS_NAMES = {"testing.py", "fixtures.py"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module named after `import` / `from` (relative imports resolved)
    names: tuple[str, ...]  # for `from target import a, b`; () for `import target`
    line: int
    in_function: bool
    guarded: bool  # inside a `try` that catches ImportError

    def where(self) -> str:
        return f"{self.module} (line {self.line})"

    def modules(self) -> list[str]:
        """What may be a module among the imported things: the target and target.name for each name."""
        return [self.target] + [f"{self.target}.{n}" for n in self.names]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        caught = handler.type
        names = [caught] if not isinstance(caught, ast.Tuple) else list(caught.elts)
        if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
            return True
    return False


def _imports(path: Path) -> list[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, (), node.lineno, in_function, guarded))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(Import(module, target, tuple(a.name for a in node.names), node.lineno, in_function, guarded))
        for child in ast.iter_child_nodes(node):
            in_try_body = isinstance(node, ast.Try) and child in node.body and _catches_import_error(node)
            visit(child, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)),
                  guarded or in_try_body)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False, False)
    return found


def _product_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


IMPORTS = [imp for path in _product_files() for imp in _imports(path)]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _plugin_of(name: str) -> str | None:
    """The plugin a dotted name belongs to (``flowmason.plugins.X...`` -> X), else None."""
    if not _under(name, PLUGINS) or name == PLUGINS:
        return None
    return name.split(".")[2]


def _plugin(name: str):
    return importlib.import_module(f"{PLUGINS}.{name}")


def _crossings() -> list[tuple[Import, str, str]]:
    """Every import one plugin makes of another: (import, imported module, what is wrong or "")."""
    out = []
    for imp in IMPORTS:
        own = _plugin_of(imp.module)
        if own is None:
            continue
        if imp.target == PLUGINS:  # `from flowmason.plugins import auth`: the package object
            for n in imp.names:
                if n != own:
                    out.append((imp, f"{PLUGINS}.{n}", "imports the plugin's module, not its public names"))
            continue
        other = _plugin_of(imp.target)
        if other is None or other == own:
            continue
        package = f"{PLUGINS}.{other}"
        if not imp.names:
            out.append((imp, imp.target, "`import` of another plugin: import its public names instead"))
        elif imp.target != package:
            out.append((imp, imp.target, f"imports a private module of plugin '{other}'"))
        else:
            public = set(getattr(_plugin(other), "__all__", ()))
            private = [n for n in imp.names if n not in public]
            out.append((imp, package, f"imports {', '.join(private)}, not in {package}.__all__" if private else ""))
    return out


def _report(problems: list[str]) -> str:
    return "\n".join(sorted(problems))


def test_kernel_imports_no_plugin_and_no_handler():
    problems = [f"{imp.where()} imports {imp.target} {imp.names or ''}" for imp in IMPORTS
                if _under(imp.module, "flowmason.kernel")
                and any(_under(m, PLUGINS) or _under(m, FUNCTIONS) for m in imp.modules())]
    assert not problems, "the kernel must not import plugins or functions/:\n" + _report(problems)


def test_plugins_import_only_public_names_of_other_plugins():
    problems = [f"{imp.where()}: {why} ({target})" for imp, target, why in _crossings()
                if why and (imp.module, target) not in ALLOWED]
    assert not problems, "cross-plugin imports must go through `from flowmason.plugins.X import name`, " \
                         "name in X.__all__:\n" + _report(problems)


def test_plugins_do_not_import_functions():
    problems = [f"{imp.where()} imports {imp.target}" for imp in IMPORTS if _plugin_of(imp.module)
                and any(_under(m, FUNCTIONS) for m in imp.modules()) and (imp.module, imp.target) not in ALLOWED]
    assert not problems, "plugins must not import flowmason.functions (the Lambda handlers):\n" + _report(problems)


def test_product_code_imports_no_test_tooling():
    problems = []
    for imp in IMPORTS:
        top = imp.target.split(".")[0]
        if top in ("tests", "pytest"):
            problems.append(f"{imp.where()} imports {imp.target}")
        elif top == "moto":
            if imp.module not in MOTO_HOMES:
                problems.append(f"{imp.where()} imports moto; only {', '.join(sorted(MOTO_HOMES))} may")
            elif not (imp.in_function and imp.guarded):
                problems.append(f"{imp.where()} imports moto outside a function's `try: ... except ImportError`")
    assert not problems, "product code must not depend on test tooling:\n" + _report(problems)


def test_a_plugin_declares_the_plugins_it_imports():
    problems = []
    for imp, target, _ in _crossings():
        if (imp.module, target) in ALLOWED:
            continue
        own, other = _plugin_of(imp.module), _plugin_of(target)
        mod = _plugin(own)
        declared = set(getattr(mod, "REQUIRES", ())) | set(getattr(mod, "USES", ()))
        if other not in declared:
            problems.append(f"{imp.where()} imports plugin '{other}', missing from {PLUGINS}.{own}.REQUIRES/USES")
    assert not problems, _report(problems)


def test_public_names_are_not_submodule_names():
    problems = []
    for folder in sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file()):
        subs = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        shadowed = set(getattr(_plugin(folder.name), "__all__", ())) & subs
        if shadowed:
            problems.append(f"{PLUGINS}.{folder.name}.__all__: {', '.join(sorted(shadowed))} also name submodules")
    assert not problems, _report(problems)


def test_allowed_holds_only_crossings_that_still_exist():
    seen = {(imp.module, target) for imp, target, _ in _crossings()}
    seen |= {(imp.module, imp.target) for imp in IMPORTS if _plugin_of(imp.module) and _under(imp.target, FUNCTIONS)}
    stale = ALLOWED - seen
    assert not stale, f"fixed, so remove from ALLOWED: {sorted(stale)}"


def test_no_test_harness_in_product_folders():
    harnesses = [str(p.relative_to(ROOT)) for p in _product_files() if p.name in HARNESS_NAMES]
    assert not harnesses, f"test harnesses belong in tests/support/: {harnesses}"


def test_the_wheel_ships_no_test_harness(tmp_path):
    # build from a copy of the tracked files so no build/ or stale file in the checkout can mask a leak
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True) \
        if shutil.which("git") else None
    if listed is None or listed.returncode != 0:
        pytest.skip("needs a git checkout to list the tracked files")
    files = [f for f in listed.stdout.split("\0") if f]
    src = tmp_path / "src"
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("flowmason-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("flowmason/plugins/") for n in names)  # the listing is real
    leaked = [n for n in names if n.split("/")[-1] in HARNESS_NAMES or n.split("/")[0] == "tests"]
    assert not leaked, f"the wheel ships test harnesses: {leaked}"
