"""Label view latency: from a key press to the next comparison painted.

On a project of 100,000 comparisons (built once and cached), under Qt's offscreen platform at 1280x800
(``--size`` for another window size):
for each of 500 judgments, a real key event goes to the window (through Qt's shortcut map, as a
person's would), the judgment is committed to SQLite (synchronous=FULL), the next comparison is
queried, rendered and laid out, and events are processed until the prompt and both response views have
run their paintEvent. The clock stops then.

    python benchmarks/bench_label_latency.py [--comparisons 100000] [--judgments 500] [--out DIR]

The last line printed is one JSON object (milliseconds). Target: p99 <= 16 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORDS = (
    "the model answer should explain why this works and when it fails because users ask about data "
    "training reward preference pairs label quality code python function return value error"
).split()


def paragraph(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def response(rng: random.Random, i: int, side: str) -> str:
    parts = [f"Response {side}{i}. " + paragraph(rng, rng.randint(20, 60))]
    kind = rng.random()
    if kind < 0.3:
        parts.append("```python\ndef f(x):\n    return x * %d\n\nprint(f(%d))\n```" % (i % 7 + 1, i))
    elif kind < 0.6:
        parts.append("\n".join(f"- {paragraph(rng, rng.randint(5, 14))}" for _ in range(rng.randint(2, 5))))
    parts.append(paragraph(rng, rng.randint(10, 50)))
    return "\n\n".join(parts)


def build_project(path: Path, n: int) -> None:
    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project

    rng = random.Random(0)
    t = time.perf_counter()
    records = (
        PairRecord(
            prompt=Text(f"Question {i}: " + paragraph(rng, rng.randint(8, 40))),
            response_a=Text(response(rng, i, "A")),
            response_b=Text(response(rng, i, "B")),
        )
        for i in range(n)
    )
    with Project.create(path, seed=1) as project:
        project.add_records(records, source="bench")
        assert project.counts()["comparisons"] == n
    print(f"built {n:,} comparisons in {time.perf_counter() - t:.1f} s: {path}", file=sys.stderr)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "bench_out"), help="where the cached project lives")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    template = out / f"label-latency-{args.comparisons}.wbp"
    if not template.exists():
        build_project(template, args.comparisons)
    # Label a fresh copy each run so the queue starts in the same state.
    work = Path(tempfile.mkdtemp(prefix="wb-latency-")) / "bench.wbp"
    work.write_bytes(template.read_bytes())
    os.environ["WORKBENCH_SETTINGS_DIR"] = str(work.parent / "settings")

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from workbench.ui.app import create_app
    from workbench.ui.main_window import MainWindow

    app = create_app()
    window = MainWindow(annotator="bench")
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    window.activateWindow()
    for _ in range(20):
        app.processEvents()
    assert window.open_project(work)
    view = window.label_view
    view.set_guidelines_visible(False)
    app.processEvents()
    deadline = time.time() + 5
    while QApplication.activeWindow() is not window and time.time() < deadline:
        app.processEvents()

    painted: set[str] = set()
    view.prompt_view.painted.connect(lambda: painted.add("prompt"))
    view.left_view.painted.connect(lambda: painted.add("left"))
    view.right_view.painted.connect(lambda: painted.add("right"))
    want = {"prompt", "left", "right"}

    keys = [
        (Qt.Key.Key_1, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_2, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Left, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Right, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Equal, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_0, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_1, Qt.KeyboardModifier.ShiftModifier),
    ]
    rng = random.Random(1)
    times: list[float] = []
    project = window.project
    start_judgments = project.counts()["judgments"]
    for i in range(args.warmup + args.judgments):
        before = view.current.id
        key, mod = rng.choice(keys)
        painted.clear()
        t0 = time.perf_counter()
        QTest.keyClick(window, key, mod)  # shortcut map -> commit -> next comparison rendered
        while not want <= painted:
            app.processEvents()
        t1 = time.perf_counter()
        if view.current is None or view.current.id == before:
            raise SystemExit("the view did not move on: the key was not delivered")
        if i >= args.warmup:
            times.append((t1 - t0) * 1000.0)
    committed = project.counts()["judgments"] - start_judgments
    assert committed == args.warmup + args.judgments, committed
    window.close()
    shutil.rmtree(work.parent, ignore_errors=True)

    result = {
        "benchmark": "label_latency",
        "comparisons": args.comparisons,
        "judgments": len(times),
        "p50_ms": round(percentile(times, 0.50), 2),
        "p90_ms": round(percentile(times, 0.90), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "max_ms": round(max(times), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "target_p99_ms": 16,
        "platform": QApplication.platformName(),
        "window": f"{width}x{height}",
    }
    print(
        f"key -> next comparison painted over {len(times)} judgments: p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
