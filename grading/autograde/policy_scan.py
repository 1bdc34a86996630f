"""The static half of the code policy: what the student's modules import, and which task reaches it.

Trusted side, on the submission's source as handed in (before any of it runs): each student module
is parsed (never imported) into :class:`ModuleScan`: its module-level names (imports, functions,
classes, assignments) and, for every function and method, the global names it reads, the imports it
makes, and the constructs whose effect no reading of the source can tell (``exec``, ``eval``,
``compile``, ``__import__`` or ``importlib.import_module`` of a computed name, ``sys.modules``,
``builtins``). :func:`reach` follows a task's functions through the helpers they use (functions and
classes of the same module, ``self.method``, helpers imported from another student module) and
stops at other tasks' functions, which are judged on their own: a Q3 model that calls a Q3
convolution written with PyTorch is not itself a PyTorch model.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ModuleScan", "Function", "scan_module", "read_modules", "module_name", "reach", "Reach", "matches"]

MAX_SOURCE = 2 << 20          # a larger module is not parsed (it would not be a homework's module)
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "import_module"}
_BUILTINS = set(dir(builtins))


def matches(dotted: str, forbidden) -> str | None:
    """The entry of ``forbidden`` that ``dotted`` (a module, or a module's attribute) falls under."""
    return next((f for f in forbidden if dotted == f or dotted.startswith(f + ".")), None)


def module_name(rel: str) -> str:
    """``hwlib/layers.py`` -> ``hwlib.layers``."""
    return rel[:-3].replace("/", ".") if rel.endswith(".py") else rel.replace("/", ".")


@dataclass
class Function:
    qualname: str                                  # "conv_forward", "ConvNet.loss"
    line: int
    reads: set = field(default_factory=set)        # global names read (and "name.attr" pairs)
    self_reads: set = field(default_factory=set)   # attributes read on ``self``
    imports: list = field(default_factory=list)    # (dotted module, line) imported inside it
    dynamic: list = field(default_factory=list)    # (what, line) that the source cannot tell


@dataclass
class ModuleScan:
    name: str                                      # "hwlib.layers"
    path: str                                      # "hwlib/layers.py" (as in the submission)
    bindings: dict = field(default_factory=dict)   # global name -> [("import", dotted, line) | ("def", qualname, line) | ("assign", Function, line)]
    functions: dict = field(default_factory=dict)  # qualname -> Function
    module_code: list = field(default_factory=list)   # the module-level expressions and assignments
    problem: str = ""                              # why it could not be read ("" when it was)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module of ``from ... import``, relative to the package of ``module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")[: -node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _literal_import(node: ast.Call) -> str | None:
    """``"torch"`` for ``__import__("torch")`` or ``importlib.import_module("torch")``."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def _body_facts(module: str, nodes, fn: Function) -> None:
    """Reads, imports and dynamic constructs of ``nodes`` (a function body, or an expression), nested
    functions and lambdas included."""
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            fn.reads.add(node.id)
            if node.id in ("__builtins__", "builtins"):
                fn.dynamic.append((node.id, node.lineno))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "self":
                fn.self_reads.add(node.attr)
            else:
                fn.reads.add(f"{node.value.id}.{node.attr}")
            if node.value.id == "sys" and node.attr == "modules":
                fn.dynamic.append(("sys.modules", node.lineno))
        elif isinstance(node, ast.Import):
            fn.imports += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            fn.imports += [(f"{base}.{alias.name}" if base else alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call):
            literal = _literal_import(node)
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if literal:
                fn.imports.append((literal, node.lineno))
            elif called in DYNAMIC_CALLS:
                fn.dynamic.append((f"{called}(...)", node.lineno))


def scan_module(rel: str, source: str) -> ModuleScan:
    """Parse one module's source (``rel``: its path in the submission); never raises on bad input."""
    scan = ModuleScan(module_name(rel), rel)
    if len(source) > MAX_SOURCE:
        scan.problem = f"{rel} is larger than {MAX_SOURCE >> 20} MB: not read"
        return scan
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        scan.problem = f"{rel} could not be parsed: {type(exc).__name__}"
        return scan

    def bind(name, entry):
        scan.bindings.setdefault(name, []).append(entry)

    def function(node, qualname):
        fn = Function(qualname, node.lineno)
        _body_facts(scan.name, node.body + node.decorator_list + node.args.defaults, fn)
        scan.functions[qualname] = fn
        return fn

    def top(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function(node, node.name)
                bind(node.name, ("def", node.name, node.lineno))
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        function(item, f"{node.name}.{item.name}")
                bind(node.name, ("def", node.name, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bind(alias.asname or alias.name.split(".")[0], ("import", alias.name if alias.asname
                                                                  else alias.name.split(".")[0], node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(scan.name, node)
                for alias in node.names:
                    bind(alias.asname or alias.name, ("import", f"{base}.{alias.name}" if base else alias.name,
                                                      node.lineno))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                # Code under if/try/with/for at module level still runs on import.
                top([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
                    + [n for h in getattr(node, "handlers", []) for n in h.body])
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                fn = Function(f"<module:{node.lineno}>", node.lineno)
                _body_facts(scan.name, [node.value], fn)
                scan.module_code.append(fn)
                literal = _literal_import(node.value) if isinstance(node.value, ast.Call) else None
                for target in targets:
                    for name in (n.id for n in ast.walk(target) if isinstance(n, ast.Name)):
                        bind(name, ("import", literal, node.lineno) if literal else ("assign", fn, node.lineno))
            elif isinstance(node, ast.Expr):
                fn = Function(f"<module:{node.lineno}>", node.lineno)
                _body_facts(scan.name, [node.value], fn)
                scan.module_code.append(fn)           # module-level calls: exec(...) and the like

    top(tree.body)
    return scan


def read_modules(submission: Path, rels) -> dict[str, ModuleScan]:
    """:func:`scan_module` of each module ``rels`` (paths in the submission) that is there."""
    out = {}
    for rel in rels:
        path = Path(submission) / rel
        if path.is_file() and not path.is_symlink():
            try:
                source = path.read_bytes()[: MAX_SOURCE + 1].decode("utf-8", "replace")
            except OSError:
                continue
            out[module_name(rel)] = scan_module(rel, source)
    return out


@dataclass
class Reach:
    """What a task's code reaches: functions visited, and the (module, global name) pairs they read."""
    functions: set = field(default_factory=set)    # (module, qualname)
    reads: set = field(default_factory=set)        # (module, name)
    evidence: list = field(default_factory=list)   # (dotted, "file:line ...") of imports reached
    dynamic: list = field(default_factory=list)    # (what, "file:line ...") that the source cannot tell


def reach(modules: dict, module: str, functions, stop: set) -> Reach:
    """Follow ``functions`` of ``module`` (qualnames) through the helpers they use; ``stop`` holds
    ``(module, qualname)`` of other tasks' functions, which are not followed. Code at module level
    that the source cannot tell (``exec(...)`` on import) counts for every module reached."""
    found = Reach()
    todo = [(module, q) for q in functions]
    while todo:
        mod, name = todo.pop(0)
        if (mod, name) in found.functions or mod not in modules:
            continue
        found.functions.add((mod, name))
        scan = modules[mod]
        if name in scan.functions:
            _read(modules, scan, scan.functions[name], todo, found, stop)
        if "." in name:
            continue
        # A module-level name: every binding of it (a def rebound by an assignment or an import counts).
        for kind, what, line in scan.bindings.get(name, []):
            if kind == "import":
                found.evidence.append((what, f"{scan.path}:{line}"))
                _follow_import(modules, what, todo, stop)
            elif kind == "assign":
                _read(modules, scan, what, todo, found, stop)
        todo += [(mod, q) for q in scan.functions if q.startswith(name + ".") and (mod, q) not in stop]  # a class
    for mod in {m for m, _ in found.functions}:
        for fn in modules[mod].module_code:
            found.dynamic += [(what, f"{modules[mod].path}:{line} (module level)") for what, line in fn.dynamic]
    return found


def _read(modules, scan: ModuleScan, fn: Function, todo: list, found: Reach, stop: set) -> None:
    """Record what ``fn`` imports and cannot be told, and queue the module-level names it reads."""
    where = f"{scan.path}:{{}} in {fn.qualname}"
    found.evidence += [(dotted, where.format(line)) for dotted, line in fn.imports]
    found.dynamic += [(what, where.format(line)) for what, line in fn.dynamic]
    for dotted, _ in fn.imports:              # a helper imported inside the function is followed too
        _follow_import(modules, dotted, todo, stop)
    cls = fn.qualname.split(".")[0] if "." in fn.qualname else None
    if cls:
        todo += [(scan.name, f"{cls}.{attr}") for attr in fn.self_reads
                 if f"{cls}.{attr}" in scan.functions and (scan.name, f"{cls}.{attr}") not in stop]
    for name in fn.reads:
        head = name.split(".")[0]
        if head not in scan.bindings:
            if "*" in scan.bindings and head not in _BUILTINS:    # could come from a star import
                found.evidence += [(what, f"{scan.path}:{line}") for _, what, line in scan.bindings["*"]]
            continue
        found.reads.add((scan.name, head))
        for kind, what, line in scan.bindings[head]:
            if kind == "import":
                found.evidence.append((what + name[len(head):], f"{scan.path}:{line}, used in {fn.qualname}"))
                _follow_import(modules, what + name[len(head):], todo, stop)
            elif (scan.name, head) not in stop:
                todo.append((scan.name, head))


def _follow_import(modules, dotted: str, todo: list, stop: set) -> None:
    """A helper imported from another student module (``from .layers import helper``) is followed."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        mod = ".".join(parts[:cut])
        if mod in modules:
            if (mod, parts[cut]) not in stop:
                todo.append((mod, parts[cut]))
            return
