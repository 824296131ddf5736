"""The house rules, checked on the source so that they cannot erode: short files and functions,
imports that run one way through the pipeline, no import circle, code that speaks of the
software and not of who wrote it."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60  # longer only with a comment `# long: <why>` in its body

# The pipeline, bottom up: a part may import its own level and the levels below it.
LEVELS = {
    "errors": 0,
    "geometry": 1,
    "design": 2, "layers": 2, "reference": 2, "cnnlab": 2,  # the package root re-exports design
    "data": 3, "inspect": 3,
    "train": 4, "diagnose": 4, "explain": 4,
    "report": 5, "lab": 5, "explorer": 5,
    "cli": 6, "__main__": 6,  # python -m cnnlab: the command
}  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> set[str]:
    """cnnlab modules `name` imports, at module level or inside functions (an import hidden in
    a function still runs), leaving out `if TYPE_CHECKING:` blocks (they never run)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for block in ast.walk(tree) if _type_checking(block) for n in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cnnlab"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] == "cnnlab":
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                          for a in node.names}  # fmt: skip
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cnnlab"


def test_no_file_is_too_long():
    long = {p.relative_to(SRC).as_posix(): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}  # fmt: skip
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_long_functions_say_why():
    unexplained = []
    for path in MODULES.values():
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.end_lineno - node.lineno + 1 <= MAX_FUNCTION_LINES:
                continue
            body = lines[node.lineno - 1 : node.end_lineno]
            if not any(line.strip().startswith("# long:") for line in body):
                rel = path.relative_to(SRC).as_posix()
                unexplained.append(f"{rel}:{node.lineno} {node.name}")
    assert not unexplained, f"functions over {MAX_FUNCTION_LINES} lines without `# long:`"


def test_imports_run_one_way_through_the_pipeline():
    upward = []
    for module, imported in GRAPH.items():
        for target in imported:
            a, b = _part(module), _part(target)
            if LEVELS[b] > LEVELS[a]:
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_no_import_circle():
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the path, 2 done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH.get(module, ())):
            if target not in MODULES:
                continue
            if state[target] == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif state[target] == 0:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(MODULES):
        if state[module] == 0:
            visit(module, [module])
    assert not circles, circles


def test_code_speaks_of_the_software_not_of_people():
    people = re.compile(r"\bengineer [A-Z]\b|\b[A-Z]'s (version|code|contract)\b")
    files = [p for top in ("src", "tests", "benchmarks") for p in (SRC.parent / top).rglob("*.py")]
    found = [
        f"{path.relative_to(SRC.parent)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if people.search(line)
    ]
    assert not found, found
