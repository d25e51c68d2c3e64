"""The ablation's report section: ``ablation.md`` (tables), ``ablation.json`` and one figure per axis.

For each axis, case and test set: the mean PCC over the test images with its 95 % bootstrap interval,
the paired difference to the axis's reference variant (its first) with its interval (a difference
whose interval excludes 0 is marked as a change), and the constant-output baseline (each variant's
mean training target as every reconstruction). See :mod:`.ablate` for the axes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.training.statistics import Estimate, bootstrap_mean, paired_difference

TITLES = {
    "normalisation": "(a) speckle normalisation",
    "grey_model": "(b) the DMD's grey model (amplitude and incoherent: ablations only)",
    "size": "(c) network resolution and width",
    "length": "(d) training length (epoch cap against convergence)",
    "memory": "(e) the diffuser's memory-effect range, case 5",
}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``axis → case → [variant rows]`` with intervals, references first."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        grouped[result["axis"]][result["case"]].append(result)
    summary: dict[str, Any] = {}
    for axis, cases in grouped.items():
        summary[axis] = {}
        for case, variants in cases.items():
            reference = variants[0]
            rows = []
            for variant in variants:
                tests = {}
                baseline = variant.get("baseline_pcc", {})  # absent in results of older versions
                for test, pcc in variant["pcc"].items():
                    tests[test] = {
                        "pcc": _bounds(bootstrap_mean(pcc)),
                        "vs_reference": _bounds(paired_difference(pcc, reference["pcc"][test])),
                        "baseline": _bounds(bootstrap_mean(baseline[test])) if test in baseline else None,
                    }
                rows.append(
                    {k: variant[k] for k in ("label", "profile", "normalisation", "training")}
                    | {"tests": tests}
                )
            summary[axis][case] = rows
    return summary


def _bounds(estimate: Estimate) -> dict[str, float]:
    return {"mean": estimate.mean, "low": estimate.low, "high": estimate.high}


def pool_seeds(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One result per variant from the same ablation's results under several seeds: each test's PCC
    and baseline become ``[seed][image]``, epochs and stops are listed per seed. Variants missing
    from any seed are left out; the order is the first seed's."""
    by_seed = [{(r["axis"], r["case"], r["label"]): r for r in results} for results in per_seed]
    pooled = []
    for key, first in by_seed[0].items():
        runs = [seed[key] for seed in by_seed if key in seed]
        if len(runs) < len(by_seed):
            continue
        baselines = first.get("baseline_pcc", {})  # absent in results of older versions
        pooled.append(
            first
            | {
                "pcc": {test: [run["pcc"][test] for run in runs] for test in first["pcc"]},
                "baseline_pcc": {test: [run["baseline_pcc"][test] for run in runs] for test in baselines},
                "training": {
                    field: "/".join(str(run["training"][field]) for run in runs)
                    for field in ("epochs", "stopped")
                },
            }
        )
    return pooled


def write_section(results: list[dict[str, Any]], out: Path, *, seeds: int = 1) -> dict[str, Any]:
    """Write ``ablation.md``, ``ablation.json`` and ``ablation-<axis>.png`` under ``out``; the summary.

    ``seeds`` > 1: ``results`` are :func:`pool_seeds`'s, and the text says what the intervals cover.
    """
    summary = summarise(results)
    (out / "ablation.json").write_text(json.dumps(summary, indent=2) + "\n")
    spread = (
        f"Pooled over {seeds} seeds (each its own data split, diffuser, camera noise and initial weights; "
        "`seed<k>/ablation.md` has each seed's section): intervals are two-stage bootstraps over seeds "
        "and test images, and each seed's differences are paired on its own images."
        if seeds > 1
        else "One training per variant: the intervals cover the test images, not the spread between "
        "trainings (initial weights, diffuser) that `reproduce --seeds` and `ablate --seeds` measure."
    )
    lines = [
        "## Ablations",
        "",
        "Mean PCC over the test images with its 95 % bootstrap interval; Δ: the paired difference to the "
        "axis's first variant on the same images (bold where its interval excludes 0: a change); "
        "baseline: the constant output (the variant's mean training target as every reconstruction), "
        f"drawn as a black tick in the figures. {spread}",
        "",
    ]
    for axis, cases in summary.items():
        lines += [f"### {TITLES[axis]}", "", f"![{axis}](ablation-{axis}.png)", ""]
        for case, rows in cases.items():
            lines += [f"Case {case}:", "", *_case_table(rows), ""]
        _figure(axis, cases, out / f"ablation-{axis}.png", f" ({seeds} seeds pooled)" if seeds > 1 else "")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    return summary


def _case_table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown table of one case's variants: per test set PCC, Δ to the reference, baseline."""
    tests = list(rows[0]["tests"])
    header = " | ".join(f"{t} PCC | Δ {t} | {t} baseline" for t in tests)
    lines = [f"| variant | epochs (stop) | {header} |", "|---|---|" + "---|---|---|" * len(tests)]
    for row in rows:
        cells = []
        for test in tests:
            scores = row["tests"][test]
            delta = scores["vs_reference"]
            text = f"{delta['mean']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]"
            changed = not delta["low"] <= 0.0 <= delta["high"]
            baseline = _interval(scores["baseline"]) if scores.get("baseline") else "–"
            cells += [_interval(scores["pcc"]), f"**{text}**" if changed else text, baseline]
        training = row["training"]
        lines.append(
            f"| {row['label']} | {training['epochs']} ({training['stopped']}) | " + " | ".join(cells) + " |"
        )
    return lines


def _interval(value: dict[str, float]) -> str:
    return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def _figure(axis: str, cases: dict[str, list[dict[str, Any]]], path: Path, note: str = "") -> None:
    """Grouped bars: one panel per case, one group per test set, one bar per variant, 95 % whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cases), figsize=(4.5 * len(cases), 3.4), squeeze=False)
    for panel, (case, rows) in zip(axes[0], cases.items(), strict=True):
        tests = list(rows[0]["tests"])
        width = 0.8 / len(rows)
        for index, row in enumerate(rows):
            means = [row["tests"][t]["pcc"]["mean"] for t in tests]
            low = [m - row["tests"][t]["pcc"]["low"] for m, t in zip(means, tests, strict=True)]
            high = [row["tests"][t]["pcc"]["high"] - m for m, t in zip(means, tests, strict=True)]
            x = np.arange(len(tests)) + (index - (len(rows) - 1) / 2) * width
            panel.bar(x, means, width, yerr=[low, high], capsize=2, label=row["label"])
            baselines = [(row["tests"][t].get("baseline") or {}).get("mean", np.nan) for t in tests]
            panel.hlines(baselines, x - width / 2, x + width / 2, colors="black", linewidth=1.5)
        panel.set_xticks(np.arange(len(tests)), tests, fontsize=8, rotation=30, ha="right")
        panel.set_title(f"case {case}", fontsize=9)
        panel.set_ylabel("PCC (95 % interval)")
        panel.legend(fontsize=7)
    fig.suptitle(TITLES[axis] + note, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
