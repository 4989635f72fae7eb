"""The layering rules of docs/architecture.md are checked by the build (`lint-imports`), not by goodwill.

These tests run the real contracts from pyproject.toml: once on the package as it is, and once on a copy
with a forbidden import planted in each layer, to show that a violation fails the build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Next to this interpreter (a virtual environment's bin/), else on PATH; the test extra installs it.
LINT_IMPORTS = (
    str(Path(sys.executable).with_name("lint-imports"))
    if Path(sys.executable).with_name("lint-imports").exists()
    else shutil.which("lint-imports") or "lint-imports"
)


def _lint(tree: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH decides which copy of the package grimp analyses.
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(tree)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "workbench", tree / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_package_keeps_its_contracts(tmp_path):
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("core/records.py", "import PySide6", "core imports"),
        ("core/store.py", "from workbench.training import config", "core imports"),
        ("core/formats.py", "import torch", "core imports"),
        ("training/loss.py", "from workbench.ui import style", "training imports"),
        ("training/data.py", "import pyqtgraph", "training imports"),
        # Deep inside a function and through another module still counts: the GUI process must never load torch.
        ("ui/widgets.py", "def _later():\n    from workbench.training import trainer", "GUI process"),
    ],
)
def test_a_planted_forbidden_import_fails_the_build(tmp_path, module, planted, contract):
    tree = _copy(tmp_path)
    target = tree / "workbench" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n\n" + planted + "\n", encoding="utf-8")
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_the_gui_process_does_not_load_torch_at_run_time():
    """import-linter does not see imports made inside third-party packages; this checks the real process."""
    code = (
        "import sys; import workbench.ui.app, workbench.ui.main_window, workbench.ui.worker; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
