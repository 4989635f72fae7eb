"""The reward model, its data collation, loss and trainer. Never imports Qt.

This module itself imports nothing heavy, so that the CLI and the GUI can prepare the environment
before torch and transformers load.
"""

import os


def offline_environment() -> None:
    """Models are local folders: no hub at run time, and no tokenizer thread pool on a small machine."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
