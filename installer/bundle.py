"""The functions r1relay ships, each built into the one self-contained file Open WebUI stores.

Open WebUI keeps a function as one Python source string and `exec`s it into a
fresh module, so it cannot import our `backend_adapters` package. The builder
inlines the engine modules a pipe or filter uses, in dependency order, and
refuses what Open WebUI's loader would break.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

from installer.errors import BuildError


@dataclass(frozen=True)
class FunctionSpec:
    id: str
    source: str  # relative to SOURCE_ROOT
    type: str  # "pipe" or "filter"


# Every function r1relay ships, in install order. A new pipe or filter: one line here.
FUNCTIONS = (
    FunctionSpec("r1relay_vllm", "pipes/vllm.py", "pipe"),
    FunctionSpec("r1relay_think_fix", "functions/think_fix.py", "filter"),
    FunctionSpec("r1relay_context_fit", "functions/context_fit.py", "filter"),
    FunctionSpec("r1relay_ktransformers", "pipes/ktransformers.py", "pipe"),
    FunctionSpec("r1relay_flask", "pipes/flask.py", "pipe"),
    FunctionSpec("r1relay_thinking_toggle", "functions/thinking_toggle.py", "filter"),
)

# The checkout, or site-packages once pip-installed: pipes/, functions/ and backend_adapters/ sit beside installer/.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "backend_adapters"
# Open WebUI rewrites these substrings anywhere in a function's source (plugin.replace_imports).
OPEN_WEBUI_REWRITES = ("from utils", "from apps", "from main", "from config")


@dataclass
class Built:
    """One function's built source and the frontmatter Open WebUI will read from it."""

    spec: FunctionSpec
    content: str
    meta: dict[str, str]

    @property
    def name(self) -> str:
        return self.meta.get("title", self.spec.id)

    @property
    def version(self) -> str:
        return self.meta.get("version", "?")


def _package_imports(tree: ast.Module, where: str) -> tuple[list[ast.stmt], list[str]]:
    """The top-level `from backend_adapters.x import …` statements and the modules they name."""
    statements: list[ast.stmt] = []
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in node.names):
            raise BuildError(f"{where}:{node.lineno}: use `from {PACKAGE}.module import name`")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            if node not in tree.body:
                raise BuildError(f"{where}:{node.lineno}: {PACKAGE} imports must be at module level")
            if node.module == PACKAGE or any(a.asname for a in node.names):
                raise BuildError(f"{where}:{node.lineno}: import names from a {PACKAGE} module, without `as`")
            statements.append(node)
            modules.append(node.module.split(".", 1)[1])
    return statements, modules


def _dependency_order(roots: list[str]) -> list[str]:
    """Modules in an order where each comes after the modules it imports."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise BuildError(f"import cycle through {PACKAGE}.{name}")
        visiting.add(name)
        path = SOURCE_ROOT / PACKAGE / f"{name}.py"
        if not path.exists():
            raise BuildError(f"{PACKAGE}.{name} does not exist")
        for dep in _package_imports(ast.parse(path.read_text()), str(path))[1]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for root in roots:
        visit(root)
    return order


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _body_without(source: str, tree: ast.Module, drop: list[ast.stmt]) -> str:
    """The source text minus the docstring, `__future__` imports and the given statements."""
    lines = source.splitlines()
    cut: set[int] = set()
    skip = list(drop)
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None), ast.Constant):
        skip.append(tree.body[0])
    skip += [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    for node in skip:
        cut.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    kept = [line for i, line in enumerate(lines) if i not in cut]
    return "\n".join(kept).strip("\n")


def build_function(spec: FunctionSpec) -> str:
    """One function's self-contained source, as Open WebUI will store it."""
    path = SOURCE_ROOT / spec.source
    source = path.read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=False)
    if not docstring or not source.startswith('"""\n'):
        raise BuildError(f"{spec.source}: must start with a frontmatter docstring on its own line")
    own_imports, roots = _package_imports(tree, spec.source)
    parts = [f'"""{docstring}"""', "", "from __future__ import annotations", ""]
    defined: dict[str, str] = {}
    for name in _dependency_order(roots):
        module_path = SOURCE_ROOT / PACKAGE / f"{name}.py"
        module_source = module_path.read_text()
        module_tree = ast.parse(module_source)
        for symbol in _top_level_names(module_tree):
            if symbol in defined:
                raise BuildError(f"{symbol!r} is defined in both {defined[symbol]} and {PACKAGE}/{name}.py")
            defined[symbol] = f"{PACKAGE}/{name}.py"
        body = _body_without(module_source, module_tree, _package_imports(module_tree, str(module_path))[0])
        parts += [f"# ---- inlined from {PACKAGE}/{name}.py ----", body, "", ""]
    parts += [f"# ---- {spec.source} ----", _body_without(source, tree, own_imports), ""]
    built = "\n".join(parts)
    for text in OPEN_WEBUI_REWRITES:
        if text in built:
            raise BuildError(f"{spec.id}: the text {text!r} would be rewritten by Open WebUI's loader")
    compile(built, f"<{spec.id}>", "exec")
    return built


def frontmatter(content: str) -> dict[str, str]:
    """The `key: value` lines of a built file's docstring (as Open WebUI reads them)."""
    lines = content.split('"""', 2)[1].splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines) if v}


def build_all() -> list[Built]:
    built = []
    for spec in FUNCTIONS:
        content = build_function(spec)
        built.append(Built(spec, content, frontmatter(content)))
    return built


def export(out_dir: Path) -> list[Path]:
    """Write each function's built file and an Admin > Functions > Import file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest = []
    for item in build_all():
        path = out_dir / f"{item.spec.id}.py"
        path.write_text(item.content)
        written.append(path)
        manifest.append(
            {
                "id": item.spec.id,
                "name": item.name,
                "type": item.spec.type,
                "content": item.content,
                "meta": {"description": item.meta.get("description", ""), "manifest": item.meta},
                "is_active": True,
                "is_global": item.spec.type == "filter",
            }
        )
    index = out_dir / "functions.json"
    index.write_text(json.dumps(manifest, indent=2))
    written.append(index)
    return written
