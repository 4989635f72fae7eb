"""``workbench export-model``: a Hugging Face folder that plain transformers loads and that scores exactly
as the app did (finetune, head and LoRA runs of a BERT, a GPT-2 finetune), a model card with the data and
metrics, and one-line errors for runs that cannot be exported."""

from __future__ import annotations

import json

import pytest
from export_helpers import (
    MAX_LENGTH,
    app_scores,
    hh_records,
    score_with_plain_transformers,
    train_project,
    training_pairs,
)
from training_helpers import collect

from workbench import cli
from workbench.core.store import Project
from workbench.training.config import TrainConfig
from workbench.training.events import Finished
from workbench.training.export import RunExportError, export_run
from workbench.training.model import PairEncoder, load_tokenizer
from workbench.training.trainer import Trainer

pytestmark = pytest.mark.slow  # trains and exports real models


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert_dir, tiny_gpt2_dir):
    return train_project(tmp_path_factory.mktemp("export") / "p.wbp", tiny_bert_dir, tiny_gpt2_dir)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Every run exported once (run name -> folder)."""
    root = tmp_path_factory.mktemp("exported")
    return {name: export_run(trained.path, run_id, root / name).out_dir for name, run_id in trained.runs.items()}


@pytest.mark.slow
def test_exported_folders_score_exactly_like_the_app_with_plain_transformers(
    trained, exported, tiny_bert_dir, tiny_gpt2_dir
):
    pairs = training_pairs(trained.path)
    jobs, wanted = [], []
    for name, folder in exported.items():
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        assert not list(folder.glob("*.bin")) and not list(folder.parent.glob(".*export*"))
        encoder = PairEncoder(load_tokenizer(tiny_gpt2_dir if name == "gpt2" else tiny_bert_dir), MAX_LENGTH)
        texts = [encoder.text(p["prompt"], p[side])[0] for side in ("chosen", "rejected") for p in pairs]
        truncated = sum(
            e.truncated for e in encoder.encode_many([p["prompt"] for p in pairs], [p["chosen"] for p in pairs])
        )
        assert truncated > 0  # the left truncation is part of what must agree
        jobs.append({"folder": str(folder), "texts": texts, "max_length": MAX_LENGTH})
        stored = app_scores(trained.path, trained.runs[name])
        wanted.append([stored[p["comparison_id"]][0] for p in pairs] + [stored[p["comparison_id"]][1] for p in pairs])
    got = score_with_plain_transformers(jobs)
    for name, theirs, ours in zip(exported, got, wanted):
        assert len(theirs) == len(ours) == 2 * len(pairs)
        assert max(abs(x) for x in ours) > 1e-3, name  # a trained head, not zeros
        diff = max(abs(a - b) for a, b in zip(theirs, ours))
        assert diff <= 1e-5, (name, diff)


def test_head_and_lora_runs_fold_into_a_stock_classifier(exported):
    head = json.loads((exported["head"] / "config.json").read_text())
    assert head["architectures"] == ["BertForSequenceClassification"] and head["id2label"] == {"0": "reward"}
    from safetensors import safe_open

    with safe_open(str(exported["lora"] / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert not any("lora" in n for n in names) and "classifier.weight" in names  # merged, not adapters
    gpt2 = json.loads((exported["gpt2"] / "config.json").read_text())
    assert gpt2["architectures"] == ["GPT2ForSequenceClassification"] and gpt2["pad_token_id"] is not None


def test_the_model_card_reports_data_and_metrics(trained, exported):
    card = (exported["finetune"] / "README.md").read_text()
    with Project.open(trained.path) as project:
        summary = project.run(trained.runs["finetune"])["summary"]
        labels = project.statistics()["labels"]
    assert card.startswith("---\nlibrary_name: transformers")
    for text in (
        "| trained on (preferences A or B) | 40 |",
        f"| training split | {summary['n_train']} |",
        f"| validation split (by prompt, seed 0) | {summary['n_val']} |",
        "over-length",
        "import:hh-style.jsonl (40)",
        f"a_or_b {labels['a_or_b']}, tie 0",  # annotators, labels (a and b pooled: the stored order says nothing)
        f"| accuracy | {summary['val_accuracy']:.4g} |",
        f"| loss | {summary['val_loss']:.4g} |",
        f"Steps: {summary['steps']} of {summary['total_steps']}",
        "Time: ",
        '"learning_rate": 0.005',
        "AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)",
    ):
        assert text in card, text
    # The YAML the Hub and TRL read: the model-index from the metrics, the data, no licence (the tiny test
    # backbone's folder has no card; MiniLM's apache-2.0 is in test_export_formats.py).
    from workbench.core.hub import read_card_yaml

    meta = read_card_yaml(exported["finetune"] / "README.md")
    assert meta["pipeline_tag"] == "text-classification" and meta["datasets"] == [trained.path.stem]
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"]["split"] == "validation"
    assert result["metrics"][0] == {
        "type": "accuracy",
        "value": round(summary["val_accuracy"], 6),
        "name": "validation accuracy",
    }
    assert 'pipeline("text-classification", model=folder, function_to_apply="none")' in card
    # config.json: the reward mean and standard deviation over the training responses, as the app scored them.
    with Project.open(trained.path) as project:
        scores = project.pair_scores(trained.runs["finetune"])
    train = scores[scores["split"] == "train"]
    rewards = list(train["r_chosen"]) + list(train["r_rejected"])
    mean = sum(rewards) / len(rewards)
    std = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
    config = json.loads((exported["finetune"] / "config.json").read_text())
    assert config["reward_mean"] == pytest.approx(mean, abs=1e-9) and config["mean"] == config["reward_mean"]
    assert config["reward_std"] == pytest.approx(std, abs=1e-9) and config["normalize_reward"] is False
    assert len(rewards) == 2 * summary["n_train"]
    facts = json.loads((exported["head"] / "training_run.json").read_text())
    assert facts["mode"] == "head" and facts["n_pairs"] == 40 and facts["n_overlong"] == 0
    assert "frozen backbone, linear head" in (exported["head"] / "README.md").read_text()
    assert "LoRA (merged" in (exported["lora"] / "README.md").read_text()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_exports_and_refuses_what_it_cannot(trained, tmp_path, capsys):
    p = str(trained.path)
    out = tmp_path / "rm"
    code, stdout, err = _cli(
        capsys, "export-model", "--project", p, "--run", str(trained.runs["head"]), "--out", str(out), "--quiet"
    )
    assert code == 0, err
    assert stdout.startswith(f"exported run {trained.runs['head']} (step ") and "16 pairs score as in the app" in stdout
    assert (out / "model.safetensors").is_file()

    with Project.open(trained.path) as project:
        failed = project.create_run("finetune", "minilm", {})
        project.update_run(failed, status="failed", message="out of memory: tried to allocate 2 GiB")
        pending = project.create_run("finetune", "minilm", {})
    cases = [
        (["--run", "99"], "there is no run 99 in p.wbp; its runs are 1, 2, 3, 4"),
        (["--run", str(failed)], f"run {failed} failed (out of memory: tried to allocate 2 GiB)"),
        (["--run", str(pending)], f"run {pending} has no checkpoint"),
        (["--run", "1"], "is not empty; choose a new folder or pass --overwrite"),
    ]
    for extra, message in cases:
        code, stdout, err = _cli(capsys, "export-model", "--project", p, "--out", str(out), *extra)
        lines = err.strip().splitlines()
        assert code == 1 and not stdout and len(lines) == 1, (extra, err)
        assert lines[0].startswith("workbench: error: ") and message in lines[0], lines[0]
    code, _, err = _cli(
        capsys, "export-model", "--project", str(tmp_path / "none.wbp"), "--run", "1", "--out", str(tmp_path / "x")
    )
    assert code == 1 and "no such project file" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, err = _cli(
        capsys, "export-model", "--project", p, "--run", "1", "--out", str(tmp_path / "mine"), "--overwrite"
    )
    assert code == 1 and "holds files that are not an exported model" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # --overwrite replaces the folder; the earlier export stays intact until the new one is complete
    code, stdout, err = _cli(
        capsys, "export-model", "--project", p, "--run", "1", "--out", str(out), "--overwrite", "--quiet"
    )
    assert code == 0, err
    assert json.loads((out / "training_run.json").read_text())["run_id"] == 1


def test_a_changed_backbone_is_caught_before_anything_is_written(trained, tmp_path, tiny_bert_dir, monkeypatch):
    """The export compares its scores with the app's stored ones: a backbone folder replaced since the run
    (simulated: the checkpoint loads into a model with other weights) fails the export with a message."""
    import torch

    from workbench.training import checkpoint

    real = checkpoint.load_trained_model

    def altered(run_dir, device="cpu"):
        model, tokenizer, config = real(run_dir, device)
        with torch.no_grad():
            model.backbone.embeddings.word_embeddings.weight.mul_(1.5)
        return model, tokenizer, config

    monkeypatch.setattr(checkpoint, "load_trained_model", altered)
    with pytest.raises(RunExportError, match="differ from the app's stored scores"):
        export_run(trained.path, trained.runs["head"], tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".*"))


def test_export_model_works_on_a_read_only_project(trained, tmp_path, capsys, monkeypatch):
    """Read-only media (injected: CI runs as root) still export; the project is not touched."""
    import hashlib

    from workbench.core import store

    before = hashlib.sha256(trained.path.read_bytes()).hexdigest()
    monkeypatch.setattr(store, "probe_read_only", lambda path: "read-only file system")
    code, stdout, err = _cli(
        capsys,
        "export-model",
        "--project",
        str(trained.path),
        "--run",
        str(trained.runs["head"]),
        "--out",
        str(tmp_path / "ro"),
        "--quiet",
    )
    assert code == 0, err
    assert (tmp_path / "ro" / "model.safetensors").is_file()
    assert hashlib.sha256(trained.path.read_bytes()).hexdigest() == before


def test_an_mlp_head_with_large_rewards_exports_within_float32_rounding(tmp_path, tiny_bert_dir):
    """An MLP head trained hard (rewards about ±11) scores a few 1e-5 away from the app's stored scores: its
    embeddings were batched with other padding, and float32 rounding grows with the rewards. The check is
    relative to the scores' scale (1e-5 · max(1, max |r|)), so this export passes where a fixed 1e-5 refused
    it, and the difference stays a rounding: far below that scale."""
    path = tmp_path / "mlp.wbp"
    with Project.create(path) as project:
        project.add_records(hh_records(), source="hh-style.jsonl")
    settings = dict(mode="head", head="mlp", learning_rate=3e-2, epochs=100, weight_decay=0.0)
    events = collect(Trainer(path, TrainConfig(backbone=tiny_bert_dir, max_length=MAX_LENGTH, **settings)))
    assert isinstance(events[-1], Finished), events[-1]
    with Project.open(path) as project:
        scores = project.pair_scores(events[-1].run_id)
    scale = float(scores[["r_chosen", "r_rejected"]].abs().to_numpy().max())
    assert scale > 5  # large rewards: the case a fixed 1e-5 tolerance refused
    result = export_run(path, events[-1].run_id, tmp_path / "rm")
    assert result.checked_pairs > 0 and result.max_abs_diff is not None
    assert result.max_abs_diff <= 1e-5 * scale
    assert (tmp_path / "rm" / "model.safetensors").is_file()
