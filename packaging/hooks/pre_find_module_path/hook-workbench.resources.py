"""Find ``workbench.resources`` where setuptools puts it from: the top-level ``resources/`` folder.

pyproject.toml maps the package ``workbench.resources`` to ``resources/`` (``[tool.setuptools.package-dir]``),
so in a source checkout there is no ``workbench/resources/`` for PyInstaller's module graph to find. This
hook points the search for that one module at the repository root, so ``resources/__init__.py`` is frozen
as ``workbench.resources``; the spec collects the folder's files to ``workbench/resources/`` in the bundle,
where ``importlib.resources.files("workbench.resources")`` looks for them.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def pre_find_module_path(api):
    api.search_dirs = [REPO_ROOT]
