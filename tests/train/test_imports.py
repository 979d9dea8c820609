"""The training modules import each other without cycles (deferred imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import masklet

PACKAGE = Path(masklet.__file__).parent


def _imports(module: str) -> set[str]:
    """masklet modules that `module` imports anywhere in its file."""
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("masklet"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("masklet"))
    return found


def test_train_modules_have_no_import_cycle() -> None:
    modules = {f"masklet.train.{p.stem}" for p in (PACKAGE / "train").glob("*.py")}
    modules.discard("masklet.train.__init__")
    graph = {m: _imports(m) & modules for m in modules}
    assert graph["masklet.train.trainer"] >= {"masklet.train.workers", "masklet.train.loop"}

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in graph[node]:
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen:
                found = cycle_from(start, nxt, (*seen, nxt))
                if found:
                    return found
        return None

    for m in sorted(modules):
        assert cycle_from(m, m, (m,)) is None, " -> ".join(cycle_from(m, m, (m,)) or ())
