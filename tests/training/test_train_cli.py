"""``workbench train``: progress and a summary line, one-line errors, Ctrl+C that stops cleanly, --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wb_testing import make_synthetic_project

from workbench.core.store import Project
from workbench.training import checkpoint

REPO = Path(__file__).resolve().parents[2]
#: ``python -m workbench train`` once the CLI module exists; the training commands alone until then.
CLI = "workbench" if (REPO / "workbench" / "cli.py").is_file() else "workbench.training.commands"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", CLI, "train", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_a_run_shows_progress_and_ends_with_one_summary_line(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    proc = train(
        "--project",
        str(path),
        "--mode",
        "head",
        "--backbone",
        tiny_bert_dir,
        "--epochs",
        "5",
        "--lr",
        "3e-2",
        "--batch-size",
        "8",
        "--max-length",
        "64",
        "--seed",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run 1 finished: validation accuracy 1.000 on ")
    assert " s" in lines[0] and "pairs/s" in lines[0]
    assert "loss=" in proc.stderr and "acc=" in proc.stderr and "val_acc=" in proc.stderr  # the tqdm postfix
    assert "Traceback" not in proc.stderr
    with Project.open(path) as p:
        run = p.run(1)
    assert run["status"] == "finished"
    assert run["config"]["max_length"] == 64 and run["config"]["seed"] == 2 and run["config"]["learning_rate"] == 3e-2


@pytest.mark.slow
def test_a_failed_run_is_one_line_and_a_nonzero_exit(tmp_path, tiny_bert_dir):
    few = make_synthetic_project(tmp_path / "few.wbp", n_prompts=2, per_prompt=2)
    enough = make_synthetic_project(tmp_path / "enough.wbp")
    cases = [
        (["--project", str(few), "--backbone", tiny_bert_dir], 1, "error: only 4 pair(s) can be trained on"),
        (["--project", str(tmp_path / "missing.wbp")], 1, "no such project file"),
        (["--project", str(few), "--lr", "-1"], 2, "learning_rate must be a positive number"),
        (["--project", str(enough), "--backbone", str(tmp_path)], 1, "has no config.json"),
    ]
    for args, code, message in cases:
        proc = train(*args)
        assert proc.returncode == code, (args, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and errors[0].startswith("workbench train: error: ") and message in errors[0], (
            proc.stderr
        )
        assert "Traceback" not in proc.stderr and not proc.stdout.strip()
    assert "label at least 4 more pair(s)" in train("--project", str(few), "--backbone", tiny_bert_dir).stderr
    with Project.open(few) as p:
        assert len(p.runs()) == 0  # found before the run's row: no failed run is left behind


@pytest.mark.slow
def test_ctrl_c_stops_at_a_step_with_a_checkpoint_and_resume_finishes(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "c.wbp")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            CLI,
            "train",
            "--project",
            str(path),
            "--mode",
            "finetune",
            "--backbone",
            tiny_bert_dir,
            "--epochs",
            "60",
        ],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until steps are being taken
            with Project.open(path) as p:
                if len(p.runs()) and len(p.run_metrics(1)):
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "stopping after this step" in err and "Traceback" not in err
    assert "run 1 cancelled at step" in out and "--resume 1" in out
    with Project.open(path) as p:
        run = p.run(1)
        assert run["status"] == "cancelled"
        stopped = run["summary"]["steps"]
        assert 0 < stopped < run["summary"]["total_steps"]
        assert checkpoint.latest(p.checkpoint_dir(1)).name == f"step-{stopped:06d}"

    resumed = train("--project", str(path), "--resume", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {stopped}" in resumed.stderr and "run 1 finished" in resumed.stdout
    with Project.open(path) as p:
        assert p.run(1)["status"] == "finished" and len(p.runs()) == 1


def test_the_parser_needs_no_torch_and_documents_the_flags():
    code = (
        "import argparse, sys\n"
        "from workbench.training import commands\n"
        "parser = argparse.ArgumentParser(prog='workbench')\n"
        "commands.register(parser.add_subparsers())\n"
        "args = parser.parse_args(['train', '--project', 'p.wbp', '--lr', '1e-3', '--mode', 'finetune',"
        " '--epochs', '3', '--batch-size', '4', '--max-length', '128', '--seed', '7', '--resume', '2', '--lora'])\n"
        "assert (args.learning_rate, args.mode, args.epochs, args.batch_size, args.max_length, args.seed,"
        " args.resume, args.lora) == (1e-3, 'finetune', 3, 4, 128, 7, 2, True), args\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    helped = subprocess.run(
        [sys.executable, "-m", CLI, "train", "--help"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0
    for flag in (
        "--project",
        "--mode",
        "--backbone",
        "--epochs",
        "--lr",
        "--batch-size",
        "--max-length",
        "--seed",
        "--resume",
        "--eval-every",
        "--center-rewards-coefficient",
    ):
        assert flag in helped.stdout, flag


@pytest.mark.slow
def test_a_user_error_before_training_leaves_no_run(tmp_path, tiny_bert_dir):
    """A missing backbone folder or one without safetensors: one line, exit 1, and no run row."""
    path = make_synthetic_project(tmp_path / "p.wbp")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}", encoding="utf-8")
    for backbone, message in (
        (tmp_path / "nowhere", "neither 'minilm' nor an existing folder"),
        (no_weights, "has no .safetensors weights"),
    ):
        proc = train("--project", str(path), "--mode", "head", "--backbone", str(backbone))
        assert proc.returncode == 1, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and message in errors[0] and "failed" not in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    with Project.open(path) as p:
        assert len(p.runs()) == 0
