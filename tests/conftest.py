"""Shared fixtures. Keep this small: fixtures used by one test folder belong in that folder."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import sys
from pathlib import Path

import pytest

# Qt tests run without a screen (ENV.md); set before any test imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # a source checkout that is not installed
    sys.path.insert(0, str(REPO))
#: Real HH-RLHF pairs shared beside the repository; read from there, never copied into it.
HH_DATA = REPO.parent / "shared" / "data" / "hh-harmless-dev.jsonl.gz"


@pytest.fixture(scope="session")
def hh_rows() -> list[dict]:
    """The first 50 HH-RLHF pairs ({"chosen", "rejected"} transcripts) from ../shared/data."""
    if not HH_DATA.is_file():
        pytest.skip(f"shared HH data not found at {HH_DATA}")
    with gzip.open(HH_DATA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, 50)]


@pytest.fixture
def project(tmp_path):
    """A new, empty project file in tmp_path."""
    from workbench.core.store import Project

    with Project.create(tmp_path / "test.wbp") as p:
        yield p
