"""The application's own Python modules, parsed, for the one-truth source checks: every
package of the app (migrations left out; tests and benchmarks are not the app)."""

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = (
    "config",
    "ledger",
    "introspection",
    "remediation",
    "probes",
    "catalog",
    "registry",
    "core",
    "boundary",
)


@functools.cache
def app_modules():
    """[(path relative to the root, source text)] of every module of the app."""
    found = []
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or "__pycache__" in path.parts:
                continue
            found.append((path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")))
    return tuple(found)


def offenders(detector, modules=None):
    """{path: [line, ...]} of the modules in which `detector(tree)` finds lines."""
    found = {}
    for path, source in modules if modules is not None else app_modules():
        lines = detector(ast.parse(source, filename=path))
        if lines:
            found[path] = sorted(lines)
    return found


def call_name(node):
    """`a.b.c` for a call of a.b.c(...), else ''."""
    parts = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def string_constants(node):
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
