import random

import torch

from workbench.training.model import collate_pairs, make_batches, pad_batch, padding_fraction


def _lengths(n=2000, seed=0):
    rng = random.Random(seed)
    chosen = [min(256, int(rng.lognormvariate(4.8, 0.6))) + 2 for _ in range(n)]
    rejected = [min(256, int(c * rng.uniform(0.6, 1.4))) + 2 for c in chosen]
    return chosen, rejected


def test_batches_cover_every_index_once_and_are_seeded():
    c, r = _lengths(1003)
    longer = [max(a, b) for a, b in zip(c, r)]
    batches = make_batches(longer, 8, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert all(1 <= len(b) <= 8 for b in batches)
    assert batches == make_batches(longer, 8, seed=1)
    assert batches != make_batches(longer, 8, seed=2)
    assert max(longer[i] for i in batches[0]) == max(longer)  # longest first: OOM shows at step 1


def test_bucketing_pads_far_less_than_random_batches():
    c, r = _lengths()
    longer = [max(a, b) for a, b in zip(c, r)]
    rng = random.Random(0)
    order = list(range(len(c)))
    rng.shuffle(order)
    random_batches = [order[s : s + 8] for s in range(0, len(order), 8)]
    bucketed = make_batches(longer, 8, seed=0)
    assert padding_fraction(bucketed, c, r) < 0.5 * padding_fraction(random_batches, c, r)


def test_unshuffled_batches_are_sorted_longest_first():
    batches = make_batches([3, 9, 1, 7, 5], 2, shuffle=False)
    assert batches == [[1, 3], [4, 0], [2]]


def test_collate_puts_chosen_then_rejected_in_one_padded_batch():
    chosen = [[5, 6, 7], [8]]
    rejected = [[9, 10], [11, 12, 13, 14]]
    batch = collate_pairs(chosen, rejected, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, 0, 0], [11, 12, 13, 14]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    chosen_half, rejected_half = batch["input_ids"].chunk(2)
    assert chosen_half[:, 0].tolist() == [5, 8] and rejected_half[:, 0].tolist() == [9, 11]
    left = collate_pairs(chosen, rejected, pad_token_id=0, padding_side="left")
    assert left["input_ids"][1].tolist() == [0, 0, 0, 8] and left["attention_mask"][1].tolist() == [0, 0, 0, 1]


def test_pad_batch_pads_only_to_the_longest():
    ids, mask = pad_batch([[1, 2], [3]], pad_token_id=-1)
    assert ids.shape == (2, 2) and ids.dtype == torch.long and mask.sum().item() == 3


def test_padding_fraction_of_batches_padded_as_the_trainer_pads():
    chosen, rejected = [10, 20], [12, 16]  # one batch of 2 pairs: 58 real tokens
    assert padding_fraction([[0, 1]], chosen, rejected) == 1 - 58 / 80  # width 20
    assert padding_fraction([[0, 1]], chosen, rejected, max_length=256) == 1 - 58 / 128  # rounded up to 32
