"""Shared helpers for the reward-model trainer benchmarks (TRL baseline and our own trainer).

Everything a side-by-side comparison must do the same way lives here, so that the two trainers differ only in
the trainer:

* ``load_hh_pairs``          - the shared HH-RLHF harmless pairs, split into (prompt, chosen, rejected).
* ``split_by_prompt``        - a seeded, stable train/val split with no prompt on both sides.
* ``tokenize_left_truncated`` / ``encode_pairs`` - one tokenisation, cut from the LEFT so the response survives.
* ``score_sequences`` / ``pairwise_accuracy`` / ``hf_score_fn`` - one way of scoring held-out pairs.
* ``PeakMemory`` / ``peak_rss_mb`` / ``run_isolated`` - peak memory of a block, and a fresh process per trainer.
* ``quiet`` / ``warm_up_torch`` - silence library noise; pay torch's one-time optimizer import before timing.

Set ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1`` before importing transformers (``set_offline()`` does it;
this module calls it at import time). This module imports torch lazily so that importing it stays cheap.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import resource
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HH_PATH = "../shared/data/hh-harmless-dev.jsonl.gz"  # relative to REPO_ROOT (data/README.md)
ASSISTANT_MARKER = "\n\nAssistant:"


def set_offline() -> None:
    """No network: the bundled MiniLM is loaded from disk; the HF hub is unreachable here anyway."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no tokenizer thread pool on ~1 real core


set_offline()


# --------------------------------------------------------------------------------------------------- data


def split_implicit_prompt(chosen: str, rejected: str, marker: str = ASSISTANT_MARKER) -> tuple[str, str, str]:
    """Split two transcripts sharing a dialogue prefix into (prompt, chosen_response, rejected_response).

    The prompt ends with the last ``marker`` that lies wholly inside the longest common prefix of the two
    transcripts, i.e. the Assistant turn at which the sides part. This is NOT the last marker of either side:
    a response may itself contain "\\n\\nAssistant:" (4 of the 1,800 HH dev pairs), and taking ``rfind`` on
    one side would cut the prompt inside the other side's response. ``prompt + chosen_response == chosen``
    and ``prompt + rejected_response == rejected`` always hold. Responses keep their leading space.
    """
    n = min(len(chosen), len(rejected))
    common = 0
    while common < n and chosen[common] == rejected[common]:
        common += 1
    cut = chosen.rfind(marker, 0, common)  # end bound is exclusive: the marker lies within the common prefix
    if cut < 0:
        raise ValueError(f"no shared {marker!r} turn: not an implicit-prompt pair")
    end = cut + len(marker)
    return chosen[:end], chosen[end:], rejected[end:]


def resolve_repo_path(path: str | os.PathLike) -> Path:
    """A relative path is taken relative to the repository root (not the current directory)."""
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def load_hh_pairs(path: str | os.PathLike = DEFAULT_HH_PATH, limit: int | None = None) -> list[dict[str, str]]:
    """Read the shared HH-RLHF harmless pairs as ``[{"prompt", "chosen", "rejected"}, ...]`` in file order.

    ``path`` relative paths resolve against the repository root; ``.gz`` or plain JSONL. ``limit`` keeps the
    first N pairs. ``chosen``/``rejected`` are the responses only (prompt stripped, leading space kept).
    """
    p = resolve_repo_path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    pairs: list[dict[str, str]] = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if limit is not None and len(pairs) >= limit:
                break
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                prompt, chosen, rejected = split_implicit_prompt(row["chosen"], row["rejected"])
            except ValueError as exc:
                raise ValueError(f"{p}:{lineno}: {exc}") from None
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def stable_unit_hash(text: str, seed: int = 0) -> float:
    """A process-independent hash of ``text`` in [0, 1) (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=str(int(seed)).encode()).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_by_prompt(
    pairs: Sequence[dict],
    val_fraction: float = 0.2,
    seed: int = 0,
    key: Callable[[dict], str] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Split pairs into (train, val) by a seeded stable hash of the prompt text: no prompt is on both sides.

    Every pair whose group key hashes below ``val_fraction`` goes to val, so the val share is
    ``val_fraction`` in expectation (not exactly), the split of a pair does not depend on which other pairs are
    in the list, and it is the same in every process and Python version. Order within each side is kept.
    ``key`` defaults to the whole prompt; pass e.g. ``first_human_turn`` to keep dialogues that start with the
    same request together (the HH dev set has 1,799 distinct prompts but only 1,719 distinct first turns).
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError("val_fraction must be in [0, 1]")
    key = key or (lambda pair: pair["prompt"])
    train: list[dict] = []
    val: list[dict] = []
    for pair in pairs:
        (val if stable_unit_hash(key(pair), seed) < val_fraction else train).append(pair)
    return train, val


def first_human_turn(pair: dict) -> str:
    """Group key for ``split_by_prompt``: the dialogue's first turn (up to the first Assistant marker)."""
    return pair["prompt"].split(ASSISTANT_MARKER, 1)[0]


# ----------------------------------------------------------------------------------------------- tokens


def _special_ids(tokenizer) -> tuple[int | None, int | None]:
    """(start, end) special token ids: [CLS]/[SEP] for BERT-likes, else BOS/EOS where the tokenizer has them."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return start, end


def _raw_ids(tokenizer, text: str) -> list[int]:
    # verbose=False: no "sequence longer than 512" warning, we truncate ourselves.
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def truncate_ids_left(
    tokenizer,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    max_length: int,
    style: str = "single",
) -> tuple[list[int], list[int]]:
    """Assemble already-tokenised prompt/response into at most ``max_length`` ids; returns (ids, token_type_ids).

    ``style="single"``: ``[CLS] (prompt + response)[-budget:] [SEP]`` - one sequence cut from the left, i.e. what
        ``tokenizer(prompt + response, truncation=True, truncation_side="left")`` gives, and how TRL itself
        tokenises an implicit-prompt pair (it concatenates prompt and completion). token_type_ids all 0.
    ``style="pair"``: ``[CLS] prompt[-k:] [SEP] response [SEP]`` with token_type_ids 0 for the first segment and
        1 for the response; the prompt loses its oldest tokens first; only when the response alone exceeds
        the budget is it cut, also from the left (keeping its end), and the prompt segment is then empty.
    Either way the response is never cut while any prompt token remains.
    """
    start, end = _special_ids(tokenizer)
    prompt_ids, response_ids = list(prompt_ids), list(response_ids)
    head = [start] if start is not None else []
    tail = [end] if end is not None else []
    if style == "single":
        budget = max_length - len(head) - len(tail)
        if budget <= 0:
            raise ValueError(f"max_length={max_length} leaves no room for tokens")
        body = (prompt_ids + response_ids)[-budget:]
        ids = head + body + tail
        return ids, [0] * len(ids)
    if style == "pair":
        budget = max_length - len(head) - 2 * len(tail)
        if budget <= 0:
            raise ValueError(f"max_length={max_length} leaves no room for tokens")
        response_ids = response_ids[-budget:]
        room = budget - len(response_ids)
        prompt_ids = prompt_ids[-room:] if room > 0 else []
        first = head + prompt_ids + tail
        second = response_ids + tail
        return first + second, [0] * len(first) + [1] * len(second)
    raise ValueError(f"unknown style {style!r}: use 'single' or 'pair'")


def tokenize_left_truncated(
    tokenizer,
    prompt: str,
    response: str,
    max_length: int,
    style: str = "single",
    return_token_type_ids: bool = False,
):
    """Token ids of prompt+response, at most ``max_length``, the prompt cut from the left so the response survives.

    Returns ``list[int]``; with ``return_token_type_ids=True`` returns ``(ids, token_type_ids)``. See
    ``truncate_ids_left`` for the two layouts (``"single"``: [CLS] prompt+response [SEP], the default and what
    the TRL baseline and the README's reference figures use; ``"pair"``: [CLS] prompt [SEP] response [SEP]).
    Prompt and response are tokenised separately; for WordPiece this equals tokenising the joined text
    because HH prompts end with the punctuation of "Assistant:" (checked on all 1,800 pairs).
    """
    ids, types = truncate_ids_left(
        tokenizer, _raw_ids(tokenizer, prompt), _raw_ids(tokenizer, response), max_length, style
    )
    return (ids, types) if return_token_type_ids else ids


def encode_pairs(tokenizer, pairs: Sequence[dict], max_length: int, style: str = "single") -> list[dict]:
    """Tokenise pairs once (batched) into ``[{"chosen_ids", "rejected_ids"[, "chosen_type_ids",
    "rejected_type_ids"]}]``; type ids only for ``style="pair"``. Same result as ``tokenize_left_truncated``."""
    if not pairs:
        return []
    texts = [p["prompt"] for p in pairs] + [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    raw = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    n = len(pairs)
    out = []
    for i in range(n):
        c_ids, c_types = truncate_ids_left(tokenizer, raw[i], raw[n + i], max_length, style)
        r_ids, r_types = truncate_ids_left(tokenizer, raw[i], raw[2 * n + i], max_length, style)
        row = {"chosen_ids": c_ids, "rejected_ids": r_ids}
        if style == "pair":
            row["chosen_type_ids"], row["rejected_type_ids"] = c_types, r_types
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------------ scoring


def hf_score_fn(model) -> Callable:
    """Wrap a HF ``*ForSequenceClassification(num_labels=1)`` as ``fn(input_ids, attention_mask, token_type_ids)``."""

    def score(input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return model(**kwargs).logits.squeeze(-1)

    return score


def score_sequences(
    score_fn: Callable,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 32,
    device: str = "cpu",
    type_ids: Sequence[Sequence[int]] | None = None,
) -> list[float]:
    """Score token sequences with ``score_fn(input_ids, attention_mask[, token_type_ids]) -> (B,)``.

    Batches are formed from length-sorted sequences (right padding, little of it) for speed; results come back
    in input order. Runs under ``torch.inference_mode``; the caller puts the model in eval mode.
    """
    import torch

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    scores = [0.0] * len(seqs)
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            types = torch.zeros((len(idx), width), dtype=torch.long) if type_ids is not None else None
            for row, i in enumerate(idx):
                n = len(seqs[i])
                ids[row, :n] = torch.tensor(seqs[i], dtype=torch.long)
                mask[row, :n] = 1
                if types is not None:
                    types[row, :n] = torch.tensor(type_ids[i], dtype=torch.long)
            args = (ids.to(device), mask.to(device))
            out = score_fn(*args, types.to(device)) if types is not None else score_fn(*args)
            for row, value in zip(idx, out.float().cpu().tolist()):
                scores[row] = value
    return scores


def pairwise_accuracy(chosen_scores: Sequence[float], rejected_scores: Sequence[float]) -> float:
    """Share of pairs with r_chosen > r_rejected, strictly: a tie counts as wrong."""
    if len(chosen_scores) != len(rejected_scores):
        raise ValueError("chosen and rejected score lists differ in length")
    if not chosen_scores:
        return float("nan")
    return sum(c > r for c, r in zip(chosen_scores, rejected_scores)) / len(chosen_scores)


def evaluate_encoded_pairs(
    score_fn: Callable, encoded: Sequence[dict], pad_id: int, batch_size: int = 32, device: str = "cpu"
) -> dict[str, Any]:
    """Score ``encode_pairs`` output; returns accuracy (strict), mean margin, and the raw scores."""
    n = len(encoded)
    seqs = [e["chosen_ids"] for e in encoded] + [e["rejected_ids"] for e in encoded]
    types = None
    if encoded and "chosen_type_ids" in encoded[0]:
        types = [e["chosen_type_ids"] for e in encoded] + [e["rejected_type_ids"] for e in encoded]
    scores = score_sequences(score_fn, seqs, pad_id, batch_size, device, types)
    chosen, rejected = scores[:n], scores[n:]
    return {
        "accuracy": pairwise_accuracy(chosen, rejected),
        "mean_margin": (sum(c - r for c, r in zip(chosen, rejected)) / n) if n else float("nan"),
        "chosen_scores": chosen,
        "rejected_scores": rejected,
    }


# ------------------------------------------------------------------------------------------------- memory


def _rss_mb_now() -> float:
    """Current resident set size of this process, MB (Linux /proc; else falls back to the lifetime peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Lifetime peak RSS of this process (ru_maxrss), MB. Never goes down: see ``PeakMemory`` to isolate a block."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / 2**20 if sys.platform == "darwin" else ru / 1024  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Context manager: peak memory of the enclosed block, in MB.

    CPU (``device="cpu"``): the process-wide RSS high-water mark during the block. ru_maxrss is a lifetime
    figure, so a block can only be isolated partly inside one process:
      * a sampling thread reads /proc/self/statm every ``interval`` s during the block (cheap; torch ops release
        the GIL so it keeps sampling) - this can miss a spike shorter than the interval;
      * ru_maxrss is read before and after: if it ROSE during the block, the lifetime peak happened inside the
        block and ru_maxrss (exact, kernel-tracked) is the block's peak; otherwise the block stayed under an
        earlier peak and the sampled maximum is used.
    ``peak_mb`` is absolute (libraries, model, data, the allocator's retained memory included); ``delta_mb`` is
    peak minus RSS at entry. Both depend on what ran before in the process (freed memory kept by the allocator,
    a previous trainer's leftovers), so compare trainers each in a fresh process: ``run_isolated``.
    RSS counts every thread in the process, not just the block's own work.

    CUDA (``device`` starting with "cuda"): ``torch.cuda.reset_peak_memory_stats`` at entry and
    ``max_memory_allocated`` (tensor memory, what the trainer needs) at exit; ``reserved_peak_mb`` adds the
    caching allocator's reserve. These are per-process-resettable, so no subprocess is needed.
    """

    def __init__(self, device: str = "cpu", interval: float = 0.01):
        self.device = str(device)
        self.interval = interval
        self.peak_mb = float("nan")
        self.baseline_mb = float("nan")
        self.delta_mb = float("nan")
        self.reserved_peak_mb = float("nan")
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0.0

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._sampled = max(self._sampled, _rss_mb_now())

    def __enter__(self) -> PeakMemory:
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_mb = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            self.baseline_mb = _rss_mb_now()
            self._sampled = self.baseline_mb
            self._ru_before = peak_rss_mb()
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="PeakMemory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.reserved_peak_mb = torch.cuda.max_memory_reserved(self.device) / 2**20
            self.method = "cuda.max_memory_allocated"
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self._sampled = max(self._sampled, _rss_mb_now())
            ru_after = peak_rss_mb()
            if ru_after > self._ru_before + 0.5:  # lifetime peak rose inside the block: it is the block's peak
                self.peak_mb, self.method = max(ru_after, self._sampled), "ru_maxrss"
            else:
                self.peak_mb, self.method = self._sampled, "sampled_rss"
        self.delta_mb = self.peak_mb - self.baseline_mb

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_mb": self.peak_mb,
            "delta_mb": self.delta_mb,
            "baseline_mb": self.baseline_mb,
            "method": self.method,
        }


def add_recipe_arguments(parser) -> None:
    """The fine-tuning recipe every training benchmark shares (the issue's: MiniLM, 256 tokens, batch 8,
    lr 2e-5, 1 epoch, one thread), so that their figures compare."""
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)


def run_isolated(fn: Callable, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` in a fresh 'spawn' subprocess and return its (picklable) result.

    Use it to give each trainer its own process, so its peak RSS and timings are not inflated by memory another
    trainer left behind (ru_maxrss cannot be reset) and no torch/thread state leaks between runs. ``fn`` must
    be importable by module path (a module-level function, e.g. ``trl_baseline.run_trl``), not a lambda or a
    function defined under ``if __name__ == "__main__"``. The child inherits ``os.environ`` and ``sys.path``.
    Exceptions in the child are re-raised here.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# ------------------------------------------------------------------------------------------------- misc


@contextlib.contextmanager
def quiet():
    """Silence transformers / datasets / accelerate / TRL warnings, info logs and progress bars within the block."""
    saved: list[tuple[Any, Any]] = []
    try:
        import transformers

        saved.append((transformers.logging.set_verbosity, transformers.logging.get_verbosity()))
        transformers.logging.set_verbosity_error()
        if transformers.utils.logging.is_progress_bar_enabled():
            transformers.utils.logging.disable_progress_bar()
            saved.append((lambda _: transformers.utils.logging.enable_progress_bar(), None))
    except ImportError:
        pass
    try:
        import datasets

        saved.append((datasets.logging.set_verbosity, datasets.logging.get_verbosity()))
        datasets.logging.set_verbosity_error()
        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            saved.append((lambda _: datasets.enable_progress_bars(), None))
    except ImportError:
        pass
    loggers = [logging.getLogger(name) for name in ("trl", "accelerate", "torch.distributed")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for module in ("trl", "transformers", "accelerate", "datasets", "torch"):
                warnings.filterwarnings("ignore", module=module)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, message=".*[Tt]okenizer.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        for restore, value in reversed(saved):
            restore(value)


_WARMED = False


def warm_up_torch() -> None:
    """Pay torch's one-time costs (optimizer import ~2 s, first autograd) once, before any timed block.

    Call it in every benchmark process before timing, for every trainer alike.
    """
    global _WARMED
    if _WARMED:
        return
    import torch

    w = torch.nn.Parameter(torch.zeros(4))
    for opt in (torch.optim.AdamW([w], lr=1e-3),):
        (w * 2).sum().backward()
        opt.step()
        opt.zero_grad()
    _WARMED = True


def padding_fraction(encoded: Sequence[dict], batch_size: int, batches: Iterable[Sequence[int]] | None = None) -> float:
    """Share of padding tokens when ``encoded`` pairs are batched (consecutively, or by the given index lists),
    chosen and rejected padded together to the batch's longest sequence, as TRL's collator does."""
    if batches is None:
        batches = [range(i, min(i + batch_size, len(encoded))) for i in range(0, len(encoded), batch_size)]
    real = total = 0
    for b in batches:
        lens = [len(encoded[i]["chosen_ids"]) for i in b] + [len(encoded[i]["rejected_ids"]) for i in b]
        if lens:
            real += sum(lens)
            total += max(lens) * len(lens)
    return 1.0 - real / total if total else 0.0


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.seconds`` - wall time by perf_counter."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def held_out_accuracy(project, run_id: int, held_out: set[int], truth: dict[int, str]) -> float:
    """Accuracy on the held-out comparisons, from the run's final scores (ties count as wrong)."""
    scores = project.pair_scores(run_id)
    scores = scores[scores["comparison_id"].isin(held_out)]
    if len(scores) != len(held_out):
        raise RuntimeError(f"run {run_id} scored {len(scores)} of {len(held_out)} held-out comparisons")
    right = 0
    for cid, chosen, r_c, r_r in scores[["comparison_id", "chosen", "r_chosen", "r_rejected"]].itertuples(index=False):
        r_a, r_b = (r_c, r_r) if chosen == "a" else (r_r, r_c)
        if r_a != r_b:
            right += ("a" if r_a > r_b else "b") == truth[int(cid)]
    return right / len(held_out)
