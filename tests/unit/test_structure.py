"""The package's shape, kept by CI (issue 13): no module over 300 lines, no import cycle among vpce_doctor's modules,
no function above cyclomatic complexity 20. Read statically with ast: nothing here imports the package."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parents[2] / "vpce_doctor"
MAX_LINES = 300
MAX_COMPLEXITY = 20


def modules(package: Path = PACKAGE) -> Dict[str, Path]:
    """Dotted module name -> its file, for every .py file of the package (a package is its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The package's modules this one imports, wherever the import stands (lazy imports inside functions too: they
    close a cycle as surely when they run)."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here.split(".")[:len(here.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from . import dns` imports the module dns; `from .model import Check` imports the module model.
            submodules = {f"{module}.{alias.name}" for alias in node.names} & known
            targets.update(submodules or {module})
    return {t for t in targets if t in known and t != name}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: List[Tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, edges = work[-1]
            child = next((e for e in edges if e not in index or e in stack), None)
            if child is not None and child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph[child]))))
                continue
            if child is not None:  # on the stack: a back edge
                low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = stack[stack.index(node):]
                del stack[stack.index(node):]
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def complexity(function: ast.AST) -> int:
    """Cyclomatic complexity as radon counts it (the measure issue 13 gives): 1, plus each if, conditional
    expression, assert, loop (and its else), except handler (and try's else), comprehension (and its ifs), and each
    extra operand of and/or. Nested functions and classes are judged on their own."""
    score, todo = 1, list(getattr(function, "body", ()))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Try):
            score += len(node.handlers) + bool(node.orelse)
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, (ast.If, ast.IfExp, ast.Assert)):
            score += 1
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            score += 1 + bool(node.orelse)
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        todo.extend(ast.iter_child_nodes(node))
    return score


def functions(path: Path) -> Iterator[Tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}", complexity(node)


def test_no_module_over_300_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these by what they check (at most {MAX_LINES} lines): {long}"


def test_no_import_cycle():
    found = modules()
    graph = {name: imported(name, path, set(found)) for name, path in found.items()}
    assert not cycles(graph), f"import cycles among vpce_doctor's modules: {cycles(graph)}"


def test_no_function_above_complexity_20():
    complex_ = {where: n for path in modules().values() for where, n in functions(path) if n > MAX_COMPLEXITY}
    assert not complex_, f"split into one function per problem (at most {MAX_COMPLEXITY}): {complex_}"


def test_the_walks_see_what_they_look_for(tmp_path):
    """The checks above can fail: a two-module cycle through a lazy import, a relative import of a submodule, and
    a long judge are found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (package / "c.py").write_text("from . import a\n")
    found = modules(package)
    graph = {name: imported(name, path, set(found)) for name, path in found.items()}
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    assert cycles({"x": {"y"}, "y": {"z"}, "z": set()}) == []
    judge = ast.parse("def judge(a, b):\n"
                      "    if a and b or not a:\n"            # if 1, and/or 2
                      "        return [x for x in a if x]\n"  # comprehension 1, its if 1
                      "    for x in b:\n"                     # loop 1
                      "        pass\n"
                      "    else:\n"                           # its else 1
                      "        return 1 if a else 2\n"        # conditional expression 1
                      "    try:\n"
                      "        pass\n"
                      "    except ValueError:\n"              # handler 1
                      "        def inner():\n"                # judged on its own
                      "            if a:\n"
                      "                pass\n").body[0]
    assert complexity(judge) == 1 + 1 + 2 + 2 + 2 + 1 + 1
