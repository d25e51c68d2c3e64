"""The reproduction's report: every mean with its 95 % interval and constant-output baseline, the paper's
claims decided on intervals, the designed case, the mapping probe, figures.

Input: per case, the per-seed results :mod:`.tasks` writes (``cases/<case>/seed<k>/result.json``:
per-image metrics of every test set and of the baseline, the probe's point responses) and each case's
``case.json``/``coverage.npz``. Output in the report folder:

    table1.csv / table1.md   SI Table 1 (cases 1–4c, then designed): PCC, SSIM, CS of the first 5 faces,
                             digits and scenes (seed 0), and per test kind the mean over all held-out images
                             and seeds with its 95 % interval, its constant-output baseline with its
                             interval, the spread, n images and n seeds
    tests.csv                the same numbers for every case and test set (case 5's positions, SI's)
    report.md                settings, training, coverage, tables, the probe, the claims, figures
    fig3.png, fig4-case5.png, figS6-si.png, intervals.png, probe.png   (:mod:`.report_figures`, :mod:`.probe`)

The statistics are :mod:`.statistics`'; the claims and their criteria :mod:`.checks`'.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.training import probe, report_figures
from specklenet.training.checks import TABLE1_CASES, Check, Summary, summarise, trend_checks
from specklenet.training.metrics import METRICS

METRIC_NAMES = {"pcc": "PCC", "ssim": "SSIM", "cs": "CS"}
KINDS = ("faces", "digits", "scenes")
CSV_HEADER = [
    "metric", "case", "test", "img1", "img2", "img3", "img4", "img5", "mean", "ci_low", "ci_high",
    "baseline", "baseline_ci_low", "baseline_ci_high", "std", "n_images", "n_seeds",
]  # fmt: skip


@dataclass(frozen=True)
class Report:
    """Where the report went, and what it found."""

    markdown_path: Path
    table_csv: Path
    table_markdown: Path
    figures: list[Path]
    checks: list[Check]
    summary: Summary


def write_report(
    results: dict[str, list[dict[str, Any]]],
    cases: dict[str, dict[str, Any]],
    out: Path,
    settings: dict[str, Any],
    *,
    render_seconds: float = 0.0,
) -> Report:
    """Write tables, figures and report.md; ``results``: case → per-seed results, ``cases``: case.json."""
    results = {case: runs for case, runs in results.items() if runs}
    summary = summarise(results)
    table_cases = [c for c in (*TABLE1_CASES, "designed") if c in results]
    table_csv, table_md = _table1(results, summary, table_cases, out)
    _csv(out / "tests.csv", results, summary, list(results))
    checks = trend_checks(summary)
    probe_lines, probe_png = _probe_section(results, summary, out, settings)
    figures = [
        report_figures.fig3(results, table_cases, out),
        report_figures.fig4(results, out),
        report_figures.fig_s6(results, out),
        report_figures.intervals(summary, out, title=f"profile {settings['profile']['name']}"),
        probe_png,
    ]
    figures = [path for path in figures if path is not None]
    lines = [
        "# Reproduction of Zhang et al., *Cross-Dataset Generalization in Deep Learning*",
        "",
        _settings_text(settings),
        "",
        "Every mean below is over the held-out images and the seeds, with its 95 % bootstrap interval in "
        "brackets and, beside it, the **constant-output baseline**: the same metric for a network that "
        "answers the case's mean training target to every input. A value marked * is clearly above its "
        "baseline (the intervals do not overlap). Claims are decided on intervals, never on means alone.",
        "",
        *_training_lines(results, cases, render_seconds),
        "",
        "## Training-set coverage",
        "",
        *[f"- {info['coverage']}" for name, info in cases.items() if name in results],
        "",
        "## Table 1 (SI): per-image metrics (seed 0) and held-out means",
        "",
        table_md.read_text(),
        *_position_table(results, summary, "5", "Case 5: the output window at shifted positions (PCC)"),
        *_position_table(results, summary, "SI", "SI: random placement (PCC of digits at each position)"),
        *probe_lines,
        "",
        "## The paper's claims (and the designed set's goal), decided on intervals",
        "",
    ]
    for claim, passed, detail in checks:
        mark = {True: "✔ holds", False: "✘ not shown", None: "– not run"}[passed]
        lines.append(f"- **{claim}**: {mark}. {detail}")
    lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    lines += ["", "Per case: `cases/<case>/analysis/` (training set), `cases/<case>/seed<k>/eval/` (tests)."]
    markdown = out / "report.md"
    markdown.write_text("\n".join(lines) + "\n")
    return Report(markdown, table_csv, table_md, figures, checks, summary)


# --- tables ----------------------------------------------------------------------------------------------


def _row(metric: str, case: str, test: str, run0: dict[str, Any], entry: dict[str, Any]) -> list[Any]:
    estimate, baseline = entry["estimate"], entry["baseline"]
    first = [f"{v:.4f}" for v in run0["tests"][test]["metrics"][metric][:5]]
    first += [""] * (5 - len(first))
    numbers = (
        estimate.mean,
        estimate.low,
        estimate.high,
        baseline.mean,
        baseline.low,
        baseline.high,
        entry["std"],
    )
    return [
        METRIC_NAMES[metric],
        case,
        test,
        *first,
        *(f"{v:.4f}" for v in numbers),
        estimate.n_images,
        estimate.n_seeds,
    ]


def _csv(path: Path, results: dict, summary: Summary, cases: list[str], tests: tuple[str, ...] = ()) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_HEADER)
        for metric in METRICS:
            for case in cases:
                for test, entries in summary[case].items():
                    if not tests or test in tests:
                        writer.writerow(_row(metric, case, test, results[case][0], entries[metric]))
    return path


def _cell(entry: dict[str, Any]) -> str:
    estimate, baseline = entry["estimate"], entry["baseline"]
    star = "*" if estimate.low > baseline.high else ""
    return f"{estimate.text()}{star} (baseline {baseline.text()})"


def _table1(results: dict, summary: Summary, cases: list[str], out: Path) -> tuple[Path, Path]:
    csv_path = _csv(out / "table1.csv", results, summary, cases, KINDS)
    kinds = [k for k in KINDS if any(k in summary[c] for c in cases)]
    lines = []
    for metric in METRICS:
        header = " | ".join(f"{k} 1–5 (seed 0) | {k}: mean [95 %] (baseline [95 %])" for k in kinds)
        lines += [
            f"**{METRIC_NAMES[metric]}**",
            "",
            f"| case | {header} |",
            "|---|" + "---|---|" * len(kinds),
        ]
        for case in cases:
            cells = []
            for kind in kinds:
                if kind not in summary[case]:
                    cells += ["–", "–"]
                    continue
                first = results[case][0]["tests"][kind]["metrics"][metric][:5]
                cells += [" ".join(f"{v:.3f}" for v in first), _cell(summary[case][kind][metric])]
            lines.append(f"| C#{case} | " + " | ".join(cells) + " |")
        lines.append("")
    md_path = out / "table1.md"
    md_path.write_text("\n".join(lines))
    return csv_path, md_path


def _position_table(results: dict, summary: Summary, case: str, title: str) -> list[str]:
    if case not in summary:
        return []
    lines = [
        "",
        f"## {title}",
        "",
        "| test | mean [95 %] (baseline [95 %]) | n images × seeds |",
        "|---|---|---|",
    ]
    for test, entries in summary[case].items():
        estimate = entries["pcc"]["estimate"]
        lines.append(f"| {test} | {_cell(entries['pcc'])} | {estimate.n_images} × {estimate.n_seeds} |")
    return lines


def _training_lines(results: dict, cases: dict, render_seconds: float) -> list[str]:
    lines = [
        "## Training",
        "",
        f"Rendering (all sets, all seeds, this invocation): {render_seconds:.0f} s.",
        "",
        "| case | training set | epochs per seed | best val Dice per seed (untrained) | train s |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        t = [run["training"] for run in runs]
        shared = "" if t[0]["training_case"] == name else f" (run shared with case {t[0]['training_case']})"
        dice = ", ".join(f"{x['best_val_dice']:.3f} ({x['untrained_val_dice']:.3f})" for x in t)
        lines.append(
            f"| {name} | {cases[name]['title']}{shared} | {', '.join(str(x['epochs']) for x in t)} | {dice} "
            f"| {sum(x['seconds_training'] for x in t):.0f} |"
        )
    return lines


# --- the probe -------------------------------------------------------------------------------------------


def _probe_section(
    results: dict, summary: Summary, out: Path, settings: dict
) -> tuple[list[str], Path | None]:
    scores = probe.probe_scores(results)
    if not scores:
        return [], None
    cross, coverage_maps, coverage_scores = {}, {}, {}
    for case in scores:
        if case in probe.CORRELATED_CASES and (estimate := probe.cross_dataset_pcc(summary, case)):
            cross[case] = estimate
        path = out / "cases" / case / "coverage.npz"
        if path.exists():
            with np.load(path) as data:
                coverage_maps[case] = data["superimposed"]
                entropy = json.loads((out / "cases" / case / "case.json").read_text()).get("lit_entropy_bits")
                coverage_scores[case] = probe.coverage_score(data["lit_fraction"], entropy or 0.0)
    rho, n = probe.rank_correlation(
        {c: s.mean for c, (_, s) in scores.items()}, {c: e.mean for c, e in cross.items()}
    )
    rho_cov, _ = probe.rank_correlation(coverage_scores, {c: e.mean for c, e in cross.items()})
    figure = probe.probe_figure(
        {c: m for c, (m, _) in scores.items()},
        coverage_maps,
        {c: s for c, (_, s) in scores.items()},
        cross,
        rho,
        out / "probe.png",
        title=f"Mapping probe (profile {settings['profile']['name']}): coverage, point response, prediction",
    )
    shown = lambda value: "n/a (fewer than 3 cases, or no spread)" if value is None else f"{value:.2f}"  # noqa: E731
    lines = [
        "",
        "## The mapping probe: point responses against cross-dataset PCC",
        "",
        "Each network reconstructs one lit square in each cell of an 8×8 grid over its output window; the "
        "probe score is the mean PCC of those point responses. Cross-dataset PCC: the mean PCC over the test "
        "kinds the case was not trained on.",
        "",
        "| case | probe score [95 %] | cross-dataset PCC [95 %] | coverage score |",
        "|---|---|---|---|",
    ]
    for case, (_, score) in scores.items():
        lines.append(
            f"| {case} | {score.text()} | {cross[case].text() if case in cross else '–'} "
            f"| {coverage_scores.get(case, float('nan')):.3f} |"
        )
    lines += [
        "",
        f"Spearman rank correlation across {n} cases, probe score vs cross-dataset PCC: **{shown(rho)}**; "
        f"training-set coverage score vs cross-dataset PCC: {shown(rho_cov)}.",
    ]
    return lines, figure


def _settings_text(settings: dict[str, Any]) -> str:
    profile = settings["profile"]
    model = profile["model"]
    data = (
        settings["data_dir"]
        or "embedded low-resolution stand-ins (scikit-learn digits, scikit-image LFW subset)"
    )
    science = (
        ""
        if profile["name"] == "paper"
        else f" **Profile `{profile['name']}`: a scaled-down run, not the paper's.**"
    )
    return (
        f"Profile **{profile['name']}**: U-Net depth {model['depth']}, base width {model['base_width']}, "
        f"{model['kernel_size']}×{model['kernel_size']} kernels, {model['resolution_px']}² output from "
        f"{model['frame_px']}² speckle; Adam {profile['learning_rate']:g}, batch {profile['batch_size']}, "
        f"≤ {profile['max_epochs']} epochs, early stopping on validation Dice "
        f"(patience {profile['patience']}). {settings['n_train']} training targets per case, "
        f"{settings['n_test']} held-out test images per kind; {settings.get('seeds', 1)} seed(s) from "
        f"{settings['seed']} (each: another diffuser and other initial weights); data: {data}; speckle from "
        f"the optical twin ({settings['twin']['fidelity']} fidelity, {settings['twin']['diffuser']} "
        f"diffuser), normalised by {settings['normalisation']}.{science}\n\n"
        f"Settings: `{json.dumps({k: v for k, v in settings.items() if k != 'twin'}, sort_keys=True)}`"
    )
