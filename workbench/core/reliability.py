"""Annotator reliability and a posterior label per comparison, from a latent-truth model of the labels.

The model is crowd-kit's one-coin Dawid-Skene (``OneCoinDawidSkene``, Zhang et al. 2016): each comparison
has one true preference, and each annotator gives the true one with probability s (their *skill*, the
reliability shown here) and the other with 1 - s. One coin, not a confusion matrix per class, because the
two classes have no meaning of their own: a pair's a and b are only its storage order (an imported pair
stores its chosen response as a), so "prefers a" and "prefers b" must be treated alike. crowd-kit's
Bradley-Terry models rank *responses*; here each comparison needs its own posterior, which Dawid-Skene gives.

Symmetric in a/b by construction: a judgment is encoded by the response it prefers in a canonical order
(the two responses sorted by content hash: label 0 = the first one is better), and a comparison by its
order-free content hash, so storing any pair the other way round gives the model identical input, and the
same skills and posteriors.

What is fitted: the a/b current labels (ties, both-bad, skips, adjudications left out) of comparisons with
two or more such labels. A comparison labelled once carries no information about anyone's skill (its
likelihood does not depend on s when the classes are equally likely a priori), and in EM it only slows
convergence, so it is left out of the fit and gets its posterior from the fitted skills afterwards. Skill is
identified only where annotators overlap, and with two labels per comparison only through pairwise agreement
rates: (2 s_i - 1)(2 s_j - 1) = 2 P(i and j agree) - 1. Two good annotators with nobody else informative
give the product of their skills, not each one; three or more annotators better than chance are needed.

Intervals: a bootstrap over comparisons (resampled with replacement with a fixed seed, ``RESAMPLES`` times),
each resample refitted by ``em_one_coin``, a numpy transcription of the same EM (crowd-kit's pandas
implementation costs about 30 ms per iteration whatever the size, i.e. 1-5 s per fit: minutes for a
bootstrap). ``tests/core/test_reliability.py`` checks that the transcription reaches crowd-kit's skills.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.core.store import Project

#: bootstrap resamples for the skill intervals (fixed seed ``BOOT_SEED``)
RESAMPLES = 200
BOOT_SEED = 0
#: EM stopping rule, for crowd-kit and the transcription alike (crowd-kit's defaults: each of its iterations
#: costs ~30 ms, so a tighter rule costs seconds)
N_ITER = 100
TOL = 1e-5
#: crowd-kit's floor on probabilities
_EPS = 1e-10
MODEL = "one-coin Dawid-Skene (crowd-kit OneCoinDawidSkene), skills = P(annotator gives the true preference)"


@dataclass
class LabelData:
    """The a/b labels in the model's encoding."""

    comparison_ids: np.ndarray  # per comparison (task), sorted by comparison hash
    first_is_a: np.ndarray  # per comparison: the canonical first response is the stored a
    annotators: list[str]
    task: np.ndarray  # per label: index into comparison_ids
    worker: np.ndarray  # per label: index into annotators
    label: np.ndarray  # per label: 0 = prefers the canonical first response, 1 = the second


def label_data(project: Project) -> LabelData:
    """Every annotator's current a/b label (adjudications and adjudicators left out), canonically encoded."""
    rows = project._conn.execute(
        "SELECT c.id, c.hash, ra.hash < rb.hash, an.name, cl.choice FROM current_labels cl"
        " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators an ON an.id = cl.annotator_id"
        " JOIN comparisons c ON c.id = cl.comparison_id JOIN responses ra ON ra.id = c.response_a"
        " JOIN responses rb ON rb.id = c.response_b"
        " WHERE cl.choice IN ('a', 'b') AND j.kind != 'adjudication' AND an.kind != 'adjudicator'"
    ).fetchall()
    return encode(rows)


def encode(rows: list[tuple[int, str, Any, str, str]]) -> LabelData:
    """From rows (comparison id, comparison hash, response a's hash sorts first, annotator, choice a|b)."""
    hashes = sorted({r[1] for r in rows})
    task_of = {h: i for i, h in enumerate(hashes)}
    ids = np.zeros(len(hashes), dtype=np.int64)
    first_is_a = np.zeros(len(hashes), dtype=bool)
    for cid, h, a_first, _, _ in rows:
        ids[task_of[h]] = cid
        first_is_a[task_of[h]] = bool(a_first)
    annotators = sorted({r[3] for r in rows})
    worker_of = {a: i for i, a in enumerate(annotators)}
    task = np.array([task_of[r[1]] for r in rows], dtype=np.int64)
    worker = np.array([worker_of[r[3]] for r in rows], dtype=np.int64)
    prefers_a = np.array([r[4] == "a" for r in rows], dtype=bool)
    label = np.where(prefers_a == first_is_a[task], 0, 1).astype(np.int64)
    order = np.lexsort((worker, task))  # rows in a fixed order whatever order SQLite returned them in
    return LabelData(ids, first_is_a, annotators, task[order], worker[order], label[order])


# ------------------------------------------------------------------------------------ the model
def em_one_coin(
    task: np.ndarray, worker: np.ndarray, label: np.ndarray, n_tasks: int, n_workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-coin Dawid-Skene EM for two classes, step for step as crowd-kit's ``OneCoinDawidSkene.fit``
    (majority-vote start, skills as the mean posterior of each annotator's labels, the same floor on
    probabilities and stopping rule). Returns (skills per worker, priors of the two classes)."""
    rows_per_task = np.bincount(task, minlength=n_tasks).astype(float)
    votes = np.stack([np.bincount(task, weights=(label == k).astype(float), minlength=n_tasks) for k in (0, 1)], 1)
    probas: np.ndarray = votes.astype(float) / np.maximum(rows_per_task, 1.0)[:, None]
    priors = probas.mean(axis=0)
    skills = _skills(probas, task, worker, label, n_workers)
    loss = -np.inf
    for _ in range(N_ITER):
        log_e = _log_errors(skills)  # [worker, observed label, true label]
        priors = np.clip(priors, _EPS, None)
        loglik = np.log(priors)[None, :] + _sum_rows(log_e[worker, label], task, n_tasks)
        probas = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        probas /= probas.sum(axis=1, keepdims=True)
        priors = probas.mean(axis=0)
        skills = _skills(probas, task, worker, label, n_workers)
        log_e = _log_errors(skills)
        joint = (probas[task] * (log_e[worker, label] + np.log(np.clip(priors, _EPS, None))[None, :])).sum()
        p = np.clip(probas, _EPS, None)
        new_loss = (joint - (np.log(p) * p).sum()) / len(task)
        if new_loss - loss < TOL:
            break
        loss = new_loss
    return skills, priors


def _skills(probas: np.ndarray, task: np.ndarray, worker: np.ndarray, label: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(worker, minlength=n).astype(float)
    return np.bincount(worker, weights=probas[task, label], minlength=n) / np.maximum(counts, 1.0)


def _log_errors(skills: np.ndarray) -> np.ndarray:
    s = np.clip(skills, _EPS, 1 - _EPS)
    e = np.empty((len(s), 2, 2))
    e[:, 0, 0] = e[:, 1, 1] = s
    e[:, 0, 1] = e[:, 1, 0] = np.clip(1 - s, _EPS, 1 - _EPS)
    return np.log(e)


def _sum_rows(values: np.ndarray, task: np.ndarray, n_tasks: int) -> np.ndarray:
    # bincount, not np.add.at: the same sums, several times faster (the bootstrap calls this thousands of times)
    return np.stack([np.bincount(task, weights=values[:, k], minlength=n_tasks) for k in range(values.shape[1])], 1)


def crowdkit_fit(task: np.ndarray, worker: np.ndarray, label: np.ndarray) -> tuple[dict[int, float], np.ndarray]:
    """The point fit by crowd-kit: (skill per worker index, priors of classes 0 and 1)."""
    with warnings.catch_warnings():  # crowd-kit's pandas calls warn about future pandas behaviour
        warnings.simplefilter("ignore")
        from crowdkit.aggregation import OneCoinDawidSkene

        model = OneCoinDawidSkene(n_iter=N_ITER, tol=TOL)
        model.fit(pd.DataFrame({"task": task, "worker": worker, "label": label}))
    fitted = model.priors_
    assert fitted is not None  # set by fit
    priors = np.array([float(fitted.get(k, 0.0)) for k in (0, 1)])
    return {int(w): float(s) for w, s in model.skills_.items()}, priors


def posterior_first(data: LabelData, skills: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """P(the canonical first response is better) per comparison, from the labels and the skills (the
    model's E-step)."""
    log_e = _log_errors(skills)
    loglik = np.log(np.clip(priors, _EPS, None))[None, :] + _sum_rows(
        log_e[data.worker, data.label], data.task, len(data.comparison_ids)
    )
    probas = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    probas /= probas.sum(axis=1, keepdims=True)
    return probas[:, 0]


# ------------------------------------------------------------------------------------ the report
@dataclass
class ReliabilityFit:
    data: LabelData
    #: per annotator: skill, or NaN where they share no comparison with anyone
    skills: np.ndarray
    priors: np.ndarray
    #: P(stored a is better) per comparison of ``data``
    p_a: np.ndarray
    multi_tasks: int
    fitted: bool


def fit(project: Project) -> ReliabilityFit:
    """Fit the model; where nothing can be fitted (no comparison with two a/b labels), skills are NaN and the
    posterior is the share of votes."""
    data = label_data(project)
    n_tasks, n_workers = len(data.comparison_ids), len(data.annotators)
    per_task = np.bincount(data.task, minlength=n_tasks)
    multi = per_task[data.task] >= 2
    skills = np.full(n_workers, np.nan)
    priors = np.array([0.5, 0.5])
    fitted = bool(multi.any()) and len(set(data.label[multi].tolist())) == 2
    if fitted:
        task, worker, label = _compact(data.task[multi], data.worker[multi], data.label[multi])
        by_worker, priors = crowdkit_fit(task, worker, label)
        present = np.unique(data.worker[multi])
        for local, w in enumerate(present):
            skills[w] = by_worker.get(local, np.nan)
    elif multi.any():  # everyone agrees on every shared comparison: nothing to tell them apart
        skills[np.unique(data.worker[multi])] = 1.0 - _EPS
    if n_tasks == 0:
        p_first = np.zeros(0)
    elif np.isfinite(skills).any():
        # An annotator who shares nothing with anyone counts with the mean skill of the others.
        filled = np.where(np.isfinite(skills), skills, np.nanmean(skills))
        p_first = posterior_first(data, filled, priors)
    else:
        votes = np.bincount(data.task, weights=(data.label == 0).astype(float), minlength=n_tasks)
        p_first = votes / np.maximum(per_task, 1)
    p_a = np.where(data.first_is_a, p_first, 1.0 - p_first)
    return ReliabilityFit(data, skills, priors, p_a, int(np.count_nonzero(per_task >= 2)), fitted)


def _compact(task: np.ndarray, worker: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tasks and workers renumbered 0..n-1 (in order), for a fit on a subset."""
    return np.unique(task, return_inverse=True)[1], np.unique(worker, return_inverse=True)[1], label


def posteriors(project: Project) -> pd.DataFrame:
    """P(a ≻ b) per comparison with a/b labels: columns comparison_id, p_a, n_labels."""
    result = fit(project)
    n = np.bincount(result.data.task, minlength=len(result.data.comparison_ids))
    return pd.DataFrame({"comparison_id": result.data.comparison_ids, "p_a": result.p_a, "n_labels": n}).sort_values(
        "comparison_id", ignore_index=True
    )


def bootstrap_skills(data: LabelData, resamples: int = RESAMPLES, seed: int = BOOT_SEED) -> np.ndarray:
    """[resamples, annotators] skills refitted on comparisons (with two or more labels) drawn with
    replacement; NaN where a resample holds none of an annotator's shared labels."""
    per_task = np.bincount(data.task, minlength=len(data.comparison_ids))
    multi_tasks = np.flatnonzero(per_task >= 2)
    out = np.full((resamples, len(data.annotators)), np.nan)
    if len(multi_tasks) == 0:
        return out
    keep = per_task[data.task] >= 2
    task, worker, label = data.task[keep], data.worker[keep], data.label[keep]
    order = np.argsort(task, kind="stable")
    task, worker, label = task[order], worker[order], label[order]
    starts = np.searchsorted(task, multi_tasks)
    ends = np.searchsorted(task, multi_tasks, side="right")
    rng = np.random.default_rng(seed)
    for b in range(resamples):
        pick = rng.integers(0, len(multi_tasks), len(multi_tasks))
        rows = np.concatenate([np.arange(starts[i], ends[i]) for i in pick])
        new_task = np.repeat(np.arange(len(pick)), ends[pick] - starts[pick])
        present, w = np.unique(worker[rows], return_inverse=True)
        skills, _ = em_one_coin(new_task, w, label[rows], len(pick), len(present))
        out[b, present] = skills
    return out


#: the last reports by (labels' digest, resamples, seed): the Data view asks again after every change, and an
#: adjudication, a flag or an import of unlabelled pairs leaves the labels (and so the report) as they were
_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}
_CACHE_SIZE = 8


def _digest(data: LabelData) -> str:
    h = hashlib.blake2b(digest_size=16)
    for array in (data.comparison_ids, data.first_is_a, data.task, data.worker, data.label):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update("\x1f".join(data.annotators).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def reliability_report(project: Project, resamples: int = RESAMPLES, seed: int = BOOT_SEED) -> dict[str, Any]:
    """Per annotator: skill (reliability: the estimated share of their a/b labels that are the true
    preference), its 95% bootstrap interval, their a/b labels and how many of them are on comparisons someone
    else labelled too. JSON-serialisable; undefined numbers are None. The same labels give the report
    remembered from last time."""
    key = (_digest(label_data(project)), resamples, seed)
    if key in _CACHE:
        return copy.deepcopy(_CACHE[key])
    report = _report(project, resamples, seed)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = copy.deepcopy(report)
    return report


def _report(project: Project, resamples: int, seed: int) -> dict[str, Any]:
    result = fit(project)
    data = result.data
    boots = bootstrap_skills(data, resamples, seed) if result.fitted else np.full((0, len(data.annotators)), np.nan)
    per_task = np.bincount(data.task, minlength=len(data.comparison_ids))
    shared = per_task[data.task] >= 2
    annotators: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(data.annotators):
        column = boots[:, i][np.isfinite(boots[:, i])] if len(boots) else np.zeros(0)
        skill = result.skills[i]
        annotators[name] = {
            "skill": None if not np.isfinite(skill) else float(skill),
            "ci95": [float(np.percentile(column, 2.5)), float(np.percentile(column, 97.5))]
            if len(column) >= 20
            else None,
            "labels": int(np.count_nonzero(data.worker == i)),
            "shared_labels": int(np.count_nonzero((data.worker == i) & shared)),
        }
    return {
        "model": MODEL,
        "fitted": result.fitted,
        "comparisons": len(data.comparison_ids),
        "comparisons_multiply_labelled": result.multi_tasks,
        "resamples": resamples if result.fitted else 0,
        "seed": seed,
        "annotators": annotators,
        "note": (
            "Skill is identified only on comparisons that two or more annotators labelled a or b; with two "
            "labels per comparison it needs three or more annotators better than chance."
        ),
    }
