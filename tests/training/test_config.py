import argparse

import pytest
import torch

from workbench.training.config import TrainConfig, add_arguments, from_args, margin_for_strength


def test_defaults_and_resolved_values():
    cfg = TrainConfig()
    assert (cfg.mode, cfg.backbone, cfg.head) == ("head", "minilm", "linear")
    assert (cfg.max_length, cfg.val_fraction) == (256, 0.2)
    assert cfg.resolved_lr() == 3e-2
    assert TrainConfig(mode="finetune").resolved_lr() == 5e-5
    assert TrainConfig(mode="finetune", lora=True).resolved_lr() == 2e-4
    assert TrainConfig(mode="finetune", learning_rate=3e-5).resolved_lr() == 3e-5
    assert cfg.resolved_epochs() == 20 and TrainConfig(mode="finetune").resolved_epochs() == 2
    assert cfg.threads == 0  # auto: measured (training/threads.py)


def test_every_field_has_help():
    import dataclasses

    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f.name


def test_round_trip_and_unknown_keys_ignored():
    cfg = TrainConfig(
        mode="finetune",
        lora=True,
        head="mlp",
        learning_rate=1e-4,
        epochs=3,
        batch_size=4,
        margin_from_strength=True,
        margin_scale="large",
        center_rewards_coefficient=0.01,
        seed=7,
    )
    data = cfg.to_dict()
    assert TrainConfig.from_dict(data) == cfg
    assert TrainConfig.from_dict({**data, "from_the_future": 1, "a_newer_switch": True}) == cfg
    assert TrainConfig.from_dict({}) == TrainConfig()


@pytest.mark.parametrize(
    "key, value",
    [
        ("mode", "train"),
        ("head", "deep"),
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("learning_rate", -1.0),
        ("learning_rate", "fast"),
        ("epochs", 0),
        ("epochs", True),
        ("max_length", 4),
        ("val_fraction", 1.0),
        ("weight_decay", -0.1),
        ("center_rewards_coefficient", float("nan")),
        ("margin_scale", "huge"),
        ("eval_every", -1),
        ("threads", -2),
        ("device", "tpu"),
        ("seed", None),
        ("lora", "yes"),
    ],
)
def test_validation_names_the_field(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: value})


def test_lora_needs_finetune():
    with pytest.raises(ValueError, match="lora"):
        TrainConfig(mode="head", lora=True)


def test_int_accepted_for_float_fields():
    assert TrainConfig.from_dict({"weight_decay": 0, "learning_rate": 1}).learning_rate == 1


def test_margin_for_strength():
    assert [margin_for_strength(s, "small") for s in (4, 3, 2, 1)] == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert [margin_for_strength(s, "large") for s in (4, 3, 2, 1)] == [3, 2, 1, 0]
    assert margin_for_strength(None) == 0.0
    for bad in (0, 5, True, "4"):
        with pytest.raises(ValueError, match="strength"):
            margin_for_strength(bad)
    assert TrainConfig().margin(4) == 0.0
    assert TrainConfig(margin_from_strength=True, margin_scale="large").margin(4) == 3.0


def test_cli_flags_build_the_config():
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    add_arguments(parser)
    ns = parser.parse_args(
        [
            "p.wbproj",
            "--lr",
            "3e-4",
            "--batch-size",
            "16",
            "--max-length",
            "128",
            "--epochs",
            "4",
            "--seed",
            "9",
            "--mode",
            "finetune",
            "--backbone",
            "/models/x",
            "--lora",
            "--head",
            "mlp",
        ]
    )
    cfg = from_args(ns)
    assert (cfg.learning_rate, cfg.batch_size, cfg.max_length, cfg.epochs, cfg.seed) == (3e-4, 16, 128, 4, 9)
    assert (cfg.mode, cfg.backbone, cfg.lora, cfg.head) == ("finetune", "/models/x", True, "mlp")
    assert from_args(parser.parse_args(["p", "--learning-rate", "1e-5", "--mode", "finetune"])).learning_rate == 1e-5
    # unset flags keep the base config's values
    base = TrainConfig(mode="finetune", batch_size=4)
    assert from_args(parser.parse_args(["p", "--epochs", "1"]), base) == base.replace(epochs=1)
    with pytest.raises(SystemExit):
        parser.parse_args(["p", "--mode", "bogus"])
    with pytest.raises(ValueError, match="batch_size"):
        from_args(parser.parse_args(["p", "--batch-size", "0"]))


def test_resolve_device():
    from workbench.training.device import resolve_device

    assert resolve_device(TrainConfig(device="cpu")) == "cpu"
    auto = resolve_device(TrainConfig())
    if torch.cuda.is_available():
        assert auto == "cuda"
    else:
        assert auto in ("cpu", "mps")
        with pytest.raises(ValueError, match="cuda"):
            resolve_device(TrainConfig(device="cuda"))
