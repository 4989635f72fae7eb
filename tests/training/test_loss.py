import math

import pytest
import torch

from workbench.training.loss import pairwise_loss


def _by_hand(rc, rr, m, eta):
    terms = [-math.log(1 / (1 + math.exp(-(c - r - mm)))) for c, r, mm in zip(rc, rr, m)]
    centre = sum((c + r) ** 2 for c, r in zip(rc, rr)) / len(rc)
    return sum(terms) / len(terms) + eta * centre


def test_loss_matches_hand_computation():
    rc, rr = [1.0, 0.2, -0.5, 0.3], [0.0, 0.7, -0.5, -1.0]
    loss, metrics = pairwise_loss(torch.tensor(rc), torch.tensor(rr))
    assert loss.item() == pytest.approx(_by_hand(rc, rr, [0] * 4, 0), rel=1e-6)
    m = [1.0, 1 / 3, 0.0, 2 / 3]
    loss, _ = pairwise_loss(torch.tensor(rc), torch.tensor(rr), margin=torch.tensor(m), center_coef=0.01)
    assert loss.item() == pytest.approx(_by_hand(rc, rr, m, 0.01), rel=1e-6)
    loss, _ = pairwise_loss(torch.tensor(rc), torch.tensor(rr), margin=0.5)
    assert loss.item() == pytest.approx(_by_hand(rc, rr, [0.5] * 4, 0), rel=1e-6)
    # metrics: strict accuracy, ties reported separately
    assert metrics["accuracy"] == 0.5 and metrics["ties"] == 1.0 and metrics["n"] == 4.0
    assert metrics["margin"] == pytest.approx(sum(c - r for c, r in zip(rc, rr)) / 4, rel=1e-6)
    assert metrics["chosen_mean"] == pytest.approx(0.25) and metrics["rejected_mean"] == pytest.approx(-0.2)
    assert all(type(v) is float for v in metrics.values())


def test_untrained_model_is_log2_and_zero_accuracy():
    loss, metrics = pairwise_loss(torch.zeros(3), torch.zeros(3))
    assert loss.item() == pytest.approx(math.log(2)) and metrics["accuracy"] == 0.0 and metrics["ties"] == 3.0


def test_gradient_flows_and_metrics_are_detached():
    rc = torch.tensor([0.1, 0.2], requires_grad=True)
    rr = torch.tensor([0.3, -0.1], requires_grad=True)
    loss, _ = pairwise_loss(rc, rr, center_coef=0.1)
    loss.backward()
    assert rc.grad is not None and rr.grad is not None and torch.all(rc.grad != 0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        pairwise_loss(torch.zeros(3), torch.zeros(2))
