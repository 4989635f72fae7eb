"""SIGTERM and Ctrl+C quit the real app cleanly: no traceback (the training child's included), no child left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child waits for whoever adopted it to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def is_trainer(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize(
    "signum, to_group, status", [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)], ids=["sigterm", "ctrl-c"]
)
def test_a_signal_closes_the_app_and_its_training_process(tmp_path, signum, to_group, status):
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        WORKBENCH_SETTINGS_DIR=str(tmp_path / "settings"),
        PYTHONPATH=str(ROOT),
    )
    app = subprocess.Popen(
        [sys.executable, "-m", "workbench", "demo", "--annotator", "tester"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # its own process group, as a terminal gives it
    try:
        deadline = time.monotonic() + 60
        trainers: list[int] = []
        while not trainers and app.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            trainers = [p for p in children(app.pid) if is_trainer(p)]
        assert trainers, "the training process did not start"
        if to_group:
            os.killpg(app.pid, signum)  # Ctrl+C: the whole group, the training child too
        else:
            os.kill(app.pid, signum)
        _, stderr = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert "Traceback" not in stderr, stderr
    assert app.returncode == status, stderr
    deadline = time.monotonic() + 10
    while any(running(p) for p in trainers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(running(p) for p in trainers)
