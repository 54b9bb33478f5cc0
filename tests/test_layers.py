"""The layers of the package only point down: no module imports one above its own floor (imports
inside functions included), so there is no import circle to hide."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "imgcls"
FLOORS = [
    [
        "errors",
        "config",
        "fileio",
        "progress",
        "sorting",
        "metrics",
        "amp",
        "version",
        "memory",
        "quick_exit",
        "tta",
    ],
    ["data", "models", "tasks", "pretrained", "recipes"],
    ["run", "transfer", "analysis", "features"],
    ["engine"],
    ["predict", "evaluation", "export", "serve", "tune", "bench", "clean"],
    ["cli", "commands", "__main__", "__init__"],
]


def floor(module: str) -> int | None:
    top = module.split(".")[0] if module else "__init__"
    return next((i for i, names in enumerate(FLOORS) if top in names), None)


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported module inside the package, line) of every relative import in a file."""
    package = list(path.relative_to(SRC).parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                out.append((".".join([*base, node.module]), node.lineno))
            else:  # from . import x: a module of that package, or a name of its __init__
                for alias in node.names:
                    target = [*base, alias.name]
                    is_module = (SRC.joinpath(*target).with_suffix(".py")).is_file() or SRC.joinpath(
                        *target
                    ).is_dir()
                    out.append((".".join(target if is_module else base), node.lineno))
    return out


def test_every_module_has_a_floor() -> None:
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        assert floor(module) is not None, f"{module} is on no floor of tests/test_layers.py"


def test_nothing_imports_upward() -> None:
    upward = []
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        mine = floor(module)
        for target, line in imports(path):
            theirs = floor(target)
            if theirs is not None and mine is not None and theirs > mine:
                upward.append(
                    f"{path.relative_to(SRC)}:{line} imports {target or 'imgcls'} (floor {theirs} > {mine})"
                )
    assert not upward, "\n".join(upward)


def test_only_run_py_names_the_files_of_a_run_folder() -> None:
    """run.py owns the run folder's layout: any other module reaches a run's files through ``RunFolder``
    (a string naming one of them elsewhere — ``run / "config.yaml"`` — is a second owner). The shard
    writer's own index, also called labels.json, lives in a shard folder, not a run folder."""
    from imgcls.run import WEIGHTS, RunFolder

    names = {
        getattr(RunFolder(Path("/r")), a).name
        for a in dir(RunFolder)
        if isinstance(getattr(RunFolder, a), property)
    }
    names = {
        n for n in names | {WEIGHTS, "metrics.json", "report.html"} if "." in n
    }  # files (folder names are words)
    assert {"config.yaml", "test_metrics.json", "metrics.jsonl", "labels.json"} <= names
    allowed = {SRC / "run.py": "the owner", SRC / "data" / "shards.py": "a shard folder's index"}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text in names or any(text.endswith("/" + n) for n in names):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {text!r}")
    assert not found, found
