"""``workbench eval --report DIR``: report.md with PNG figures a person would attach to a pull request.

matplotlib draws with its Agg backend (files only, no window, no Qt), set before pyplot is imported; core
never imports plotting, so this module lives in training. Figures: the reliability diagram (before and after
temperature scaling), accuracy by length difference beside the "longer wins" baseline, and per-slice
accuracy with intervals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench.core.outputs import check_output_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(ci: Any) -> str:
    return "n/a" if not ci else f"{100 * ci[0]:.1f} – {100 * ci[1]:.1f}"


def reliability_png(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    cal = result["calibration"]
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    ax.plot([0.5, 1], [0.5, 1], color="#999", lw=1, ls="--", label="perfectly calibrated")
    for key, colour, name in (("raw", "#d62728", "T = 1"), ("scaled", "#1f77b4", "fitted T")):
        rel = cal.get(key)
        if not rel:
            continue
        pts = [(b["confidence"], b["accuracy"], b["n"]) for b in rel["bins"] if b["n"]]
        if not pts:
            continue
        label = f"{name}" + (f" = {rel['temperature']:.3g}" if key == "scaled" else "") + f" (ECE {rel['ece']:.3f})"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colour, label=label)
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("confidence max(p, 1 - p), p = σ(margin / T)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title("Reliability")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _bin_name(b: dict[str, Any]) -> str:
    lo, hi = b["lo"], b["hi"]
    if lo is None:
        return f"< {int(hi)}"
    if hi is None:
        return f"≥ {int(lo)}"
    return f"{int(lo)} – {int(hi)}"


def length_png(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    bins = result["length"]["bins"]
    fig, ax = plt.subplots(figsize=(7.6, 3.8), dpi=110)
    xs = list(range(len(bins)))
    acc = [b["accuracy"] if b["accuracy"] is not None else 0 for b in bins]
    base = [b["longer_baseline"] if b["longer_baseline"] is not None else 0 for b in bins]
    ax.bar([x - 0.2 for x in xs], acc, width=0.4, color="#1f77b4", label="model")
    ax.bar([x + 0.2 for x in xs], base, width=0.4, color="#bbbbbb", label="always prefer the longer")
    for x, b in zip(xs, bins):
        ax.text(x, 1.02, f"n={b['n']}", ha="center", fontsize=7)
    ax.set_xticks(xs, [_bin_name(b) for b in bins], fontsize=7, rotation=20)
    ax.set_ylim(0, 1.1)
    ax.axhline(0.5, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("len(chosen) − len(rejected), characters")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by length difference")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes: bars reach 1.0
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def slices_png(result: dict[str, Any], path: Path, limit: int = 12) -> bool:
    rows = [(name, r) for name, table in result["slices"].items() for r in table[:limit] if r["accuracy"] is not None]
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(rows) + 1.2), dpi=110)
    ys = list(range(len(rows)))[::-1]
    for y, (_name, r) in zip(ys, rows):
        lo, hi = r["accuracy_ci"] or (r["accuracy"], r["accuracy"])
        ax.plot([lo, hi], [y, y], color="#1f77b4", lw=2)
        ax.plot([r["accuracy"]], [y], "o", color="#1f77b4")
    ax.set_yticks(ys, [f"{name}: {r['slice']} (n={r['n']})"[:48] for name, r in rows], fontsize=7)
    ax.axvline(0.5, color="#999", lw=0.8, ls="--")
    overall = result["overall"]["accuracy"]
    if overall is not None:
        ax.axvline(overall, color="#d62728", lw=0.8, label=f"overall {_pct(overall)}")
        ax.legend(fontsize=8, loc="lower left")  # below 50% accuracy is rarely where intervals are
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy with 95% interval (bootstrap by prompt)")
    ax.set_title("Accuracy by slice")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``report.md``, ``reliability.png``, ``length.png`` and ``slices.png`` into ``out_dir``."""
    out = check_output_path(out_dir, kind="dir")
    out.mkdir(parents=True, exist_ok=True)
    reliability_png(result, out / "reliability.png")
    length_png(result, out / "length.png")
    has_slices = slices_png(result, out / "slices.png")
    o, cal, length = result["overall"], result["calibration"], result["length"]
    lines = [
        f"# Evaluation: {result['model']} on {result['pairs']}",
        "",
        f"{o['n']:,} pairs from {o.get('n_prompts', 0):,} prompts. Accuracy counts a pair right only when "
        "r(chosen) > r(rejected) strictly; intervals are 95% percentile bootstraps over prompts (seed 0).",
        "",
        "| | value | 95% interval |",
        "|---|---:|---:|",
        f"| accuracy | {_pct(o['accuracy'])} | {_ci(o['accuracy_ci'])} |",
        f"| ties | {o['ties']} | |",
        f"| loss −log σ(margin) | {o['loss']:.4f} | "
        + (f"{o['loss_ci'][0]:.4f} – {o['loss_ci'][1]:.4f}" if o.get("loss_ci") else "n/a")
        + " |",
        f"| ECE at T = 1 | {cal['raw']['ece']:.4f} | |",
    ]
    if cal.get("scaled"):
        lines.append(
            f"| ECE at the run's T = {cal['temperature']:.3g} (fitted on validation) | {cal['scaled']['ece']:.4f} | |"
        )
    lines += [
        f"| 'always prefer the longer response' | {_pct(length['longer_baseline_accuracy'])} | |",
        f"| model prefers the longer response | {_pct(length['model_prefers_longer'])} | |",
        "",
        "![reliability](reliability.png) ![length](length.png)",
        "",
        "## Accuracy by length difference",
        "",
        "| len(chosen) − len(rejected) | pairs | model | longer wins |",
        "|---|---:|---:|---:|",
    ]
    for b in length["bins"]:
        lines.append(f"| {_bin_name(b)} | {b['n']} | {_pct(b['accuracy'])} | {_pct(b['longer_baseline'])} |")
    lines += ["", "## Slices", ""]
    if has_slices:
        lines += ["![slices](slices.png)", ""]
    for name, rows in result["slices"].items():
        lines += [
            f"### by {name}",
            "",
            "| slice | pairs | accuracy | 95% interval | loss |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in rows:
            loss = "n/a" if r["loss"] is None else f"{r['loss']:.4f}"
            lines.append(f"| {r['slice']} | {r['n']} | {_pct(r['accuracy'])} | {_ci(r['accuracy_ci'])} | {loss} |")
        lines.append("")
    if result.get("rewardbench"):
        lines += ["## RewardBench sections", "", "| section | score |", "|---|---:|"]
        lines += [f"| {k} | {_pct(v)} |" for k, v in result["rewardbench"].items()]
        lines.append("")
    if "against" in result:
        a = result["against"]
        mc = a["mcnemar"]
        lines += [
            f"## Against {a['model']}",
            "",
            "| | value |",
            "|---|---:|",
            f"| accuracy of {result['model']} | {_pct(a['accuracy_a'])} |",
            f"| accuracy of {a['model']} | {_pct(a['accuracy_b'])} |",
            f"| difference (95% paired bootstrap) | {100 * a['difference']:+.1f} points ({_ci(a['difference_ci'])}) |",
            f"| McNemar exact p ({mc['only_a']} vs {mc['only_b']} discordant pairs) | {mc['p_value']:.3g} |",
            "",
        ]
    for w in result.get("warnings", []):
        lines.append(f"> warning: {w}")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "report.md"
