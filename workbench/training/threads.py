"""How many CPU threads a run uses when ``threads`` is 0 ("auto"): chosen by measurement, once per machine.

No constant fits every CPU: on the 2-core development VM two threads ran slower than one, while a laptop with
8 or 16 cores idles most of them at one. So the first run on a machine probes a few steps of the actual work
with 1 thread, half the physical cores and all of them (candidates from the machine it runs on, never a fixed
list), keeps the fastest, and caches the choice in a small JSON file in the user's data folder
(``core.demo.data_dir``: plain paths, no Qt), keyed by the CPU model, the core counts, the torch version and
the kind of work ("finetune" steps with a backward pass, "score" forward passes for embedding and scoring).
A later run on the same machine reads the choice back in microseconds.

The timer is a parameter, so tests give it fixed figures; the probe's figures travel with the run (its
``RunStarted`` details and summary) so the log and the Train view show why a count was chosen.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

_log = logging.getLogger(__name__)

CACHE_FILE = "threads.json"
#: cores left to another process of this program: the training process that serves the window keeps one free
#: for the GUI thread (``server._child_main``), which otherwise waits for a core while every core trains
_reserved_cores = 0
#: a count with more threads must beat the fewest-thread count by this fraction to be chosen: more threads
#: cost the other programs of the machine, so a tie goes to the smaller count
MIN_GAIN = 0.05


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count a kind of work uses, and how it was found."""

    threads: int
    #: "setting" (the user's number), "probe" (measured now) or "cache" (measured on an earlier run)
    source: str
    #: seconds per probe step for each candidate count (empty for "setting")
    seconds: dict[int, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for logs and tooltips, e.g. '4 CPU threads (measured: 1: 0.80 s, 2: 0.45 s, 4: 0.30 s)'."""
        plural = "s" if self.threads != 1 else ""
        if self.source == "setting":
            return f"{self.threads} CPU thread{plural} (set)"
        if not self.seconds:
            return f"{self.threads} CPU thread{plural} ({self.source})"
        figures = ", ".join(f"{n}: {s:.3g} s" for n, s in sorted(self.seconds.items()))
        how = "measured now" if self.source == "probe" else "measured on an earlier run"
        return f"{self.threads} CPU thread{plural} ({how}, s/step: {figures})"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = {str(k): v for k, v in self.seconds.items()}
        return d


def physical_cores() -> int:
    """Physical cores this process may use (psutil when installed; else the logical count)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:
        physical = usable
    return max(1, min(physical, usable))


def reserve_cores(n: int) -> None:
    """Leave ``n`` physical cores to the rest of the program: auto threads never use them."""
    global _reserved_cores
    _reserved_cores = max(0, n)


def candidates(cores: int | None = None) -> list[int]:
    """1, half the usable physical cores and all of them (distinct, ascending); usable: those not reserved."""
    n = physical_cores() if cores is None else max(1, cores)
    n = max(1, n - _reserved_cores)
    return sorted({1, max(1, n // 2), n})


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(kind: str, cores: int | None = None) -> str:
    """What a cached choice is valid for: the CPU, its cores, torch's version and the kind of work."""
    n = physical_cores() if cores is None else cores
    reserved = f"|{_reserved_cores} reserved" if _reserved_cores else ""
    return f"{cpu_model()}|{os.cpu_count()} logical|{n} physical{reserved}|torch {torch.__version__}|{kind}"


def default_cache_path() -> Path:
    from workbench.core.demo import data_dir

    return data_dir() / CACHE_FILE


def read_cache(path: Path) -> dict[str, Any]:
    """The cached choices; an unreadable or foreign file counts as empty (it is rewritten on the next probe)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, choice: ThreadChoice) -> None:
    data = read_cache(path)
    data[key] = {"threads": choice.threads, "seconds": {str(k): v for k, v in choice.seconds.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError:  # a read-only home: the probe runs again next time, nothing else changes
        _log.warning("could not cache the thread choice in %s", path, exc_info=True)


def probe(
    step: Callable[[], None],
    counts: list[int],
    *,
    repeats: int = 2,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[int, float]:
    """Seconds per ``step`` at each thread count: one warm-up call, then the fastest of ``repeats`` timed calls
    (a neighbour's load only ever slows a call down). torch's thread count is restored afterwards."""
    before = torch.get_num_threads()
    seconds: dict[int, float] = {}
    try:
        for n in counts:
            torch.set_num_threads(n)
            step()  # warm-up: allocator, thread pool start, kernel selection
            best = float("inf")
            for _ in range(max(1, repeats)):
                t0 = timer()
                step()
                best = min(best, timer() - t0)
            seconds[n] = best
    finally:
        torch.set_num_threads(before)
    return seconds


def fastest(seconds: dict[int, float]) -> int:
    """The count with the least time, unless a smaller count is within ``MIN_GAIN`` of it."""
    best = min(seconds.values())
    return min(n for n, s in seconds.items() if s <= best * (1 + MIN_GAIN))


def choose_threads(
    setting: int,
    kind: str,
    step: Callable[[], None] | None,
    *,
    cache_path: Path | None = None,
    timer: Callable[[], float] = time.perf_counter,
    cores: int | None = None,
    repeats: int = 2,
) -> ThreadChoice:
    """The thread count for ``kind`` of work: ``setting`` when it is above 0; else the cached measurement for
    this machine, or a new probe of ``step`` (cached). Without a ``step`` to measure (nothing to run yet),
    all physical cores: torch's own default."""
    if setting > 0:
        return ThreadChoice(setting, "setting")
    counts = candidates(cores)
    if len(counts) == 1:
        return ThreadChoice(counts[0], "probe", {counts[0]: 0.0})
    path = cache_path if cache_path is not None else default_cache_path()
    key = machine_key(kind, cores)
    cached = read_cache(path).get(key)
    if isinstance(cached, dict) and isinstance(cached.get("threads"), int) and cached["threads"] >= 1:
        try:
            seconds = {int(k): float(v) for k, v in (cached.get("seconds") or {}).items()}
        except (TypeError, ValueError):
            seconds = {}
        return ThreadChoice(int(cached["threads"]), "cache", seconds)
    if step is None:
        return ThreadChoice(counts[-1], "default")
    seconds = probe(step, counts, repeats=repeats, timer=timer)
    choice = ThreadChoice(fastest(seconds), "probe", seconds)
    _write_cache(path, key, choice)
    return choice
