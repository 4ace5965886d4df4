"""The layers of DESIGN.md hold: import-linter's contracts pass on the tree, and they do
catch an upward import or Django in the numeric core (checked on a copy of the tree with
one such import planted)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "config",
    "ledger",
    "introspection",
    "remediation",
    "probes",
    "catalog",
    "registry",
    "core",
    "boundary",
]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd):
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    """The project's packages and import-linter settings, copied."""
    dest = tmp_path_factory.mktemp("tree")
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "migrations")
        )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/planted.py", "from ledger import views\n", "import only the layers below"),
        (
            "registry/planted.py",
            "from probes.models import Probe\n",
            "import only the layers below",
        ),
        (
            "catalog/planted.py",
            "def later():\n    from remediation import models\n",
            "import only the layers below",
        ),
        ("boundary/planted.py", "import django.db\n", "imports no Django"),
        ("boundary/planted2.py", "from core import roles\n", "import only the layers below"),
    ],
    ids=[
        "core-imports-ledger",
        "registry-imports-probes",
        "catalog-imports-remediation-late",
        "boundary-imports-django",
        "boundary-imports-core",
    ],
)
def test_a_planted_upward_import_breaks_a_contract(tree_copy, module, line, contract):
    planted = tree_copy / module
    planted.write_text(line)
    try:
        result = lint_imports(tree_copy)
    finally:
        planted.unlink()
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert contract in result.stdout.split("BROKEN")[0].splitlines()[-1]


def _late_project_imports():
    """Project imports inside function bodies with no comment saying why (on the line, or
    above its block of imports)."""
    import ast

    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for sub in ast.walk(node):
                    if not isinstance(sub, ast.Import | ast.ImportFrom):
                        continue
                    relative = isinstance(sub, ast.ImportFrom) and sub.level
                    name = sub.module if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                    if not relative and (name or "").split(".")[0] not in PACKAGES:
                        continue
                    if not _explained(lines, sub.lineno - 1):
                        found.append(f"{path.relative_to(ROOT)}:{sub.lineno}")
    return found


def _explained(lines, index):
    if "#" in lines[index]:
        return True
    index -= 1
    while index >= 0:
        text = lines[index].strip()
        if text.startswith("#"):
            return True
        if (
            text
            and not text.startswith(("from ", "import "))
            and not text.endswith((",", "("))
            and text != ")"
        ):
            return False
        index -= 1
    return False


def test_no_project_import_hides_in_a_function_without_a_reason():
    assert _late_project_imports() == []
