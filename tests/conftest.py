"""Shared fixtures. Keep this small: fixtures used by one test folder belong in that folder."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples (a red build must be reproducible); a developer's
# run explores new ones each time. HYPOTHESIS_PROFILE=explore in CI, or =ci locally, picks the other.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore"))

# Qt tests run without a screen; set before any test imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing a test runs writes to the user's real data folder (e.g. the measured thread count of training/threads.py);
# child processes (training servers, CLIs) inherit it. One folder per session: "auto" threads are probed once.
os.environ.setdefault("WORKBENCH_DATA_DIR", tempfile.mkdtemp(prefix="wb-tests-data-"))

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # a source checkout that is not installed
    sys.path.insert(0, str(REPO))
#: Real HH-RLHF pairs shared beside the repository; read from there, never copied into it.
HH_DATA = REPO.parent / "shared" / "data" / "hh-harmless-dev.jsonl.gz"


@pytest.fixture(scope="session")
def hh_rows() -> list[dict]:
    """The first 50 HH-RLHF pairs ({"chosen", "rejected"} transcripts) from ../shared/data."""
    if not HH_DATA.is_file():  # CI lays shared/ beside the clone: a missing file is a broken setup, not a skip
        pytest.fail(f"the shared HH data is missing: expected {HH_DATA} (the folder shared/ beside the repository)")
    with gzip.open(HH_DATA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, 50)]


@pytest.fixture
def project(tmp_path):
    """A new, empty project file in tmp_path."""
    from workbench.core.store import Project

    with Project.create(tmp_path / "test.wbp") as p:
        yield p


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the bundled MiniLM tokenizer; random weights, built in a second."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from workbench.training.model import bundled_minilm_path

    out = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
