"""The reproduction's report: Table 1 of the SI, the case-5 and SI tables, figures, the paper's trend checks.

Input: the per-case results :func:`specklenet.training.reproduce.reproduce` writes (``result.json``:
metrics of the first five test images of each set, summaries over the whole held-out sets) and the
saved reconstructions (``first.npz``) and pairs files. Output in the report folder:

    table1.csv / table1.md   SI Table 1: PCC, SSIM, CS of 5 faces and 5 digits per case (cases 1–4c, as
                             printed), plus mean ± std over all held-out test images of each kind
    report.md                settings, training summary, coverage, the tables, trend checks, figures
    fig3.png                 Fig. 3: ground truth, speckle, each case's reconstructions with PCC
    fig4-case5.png           Fig. 4: case 5 at the centre and at the shifted positions
    figS6-si.png             Fig. S6: the SI model on digits at the four positions

Trend checks (the paper's scientific claims; each states its numbers and passes or fails):
face PCC is highest in case 1; it rises from case 2 to 3 and from 3 to each of 4a/4b/4c; digit PCC
stays high in cases 3–4c (≥ 0.9 × case 2's); case 5's shifted tests fail (mean PCC < ½ the centre's);
SI succeeds at every position (each position's mean PCC ≥ 0.8 × the best position's).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.daemon.records import read_pairs
from specklenet.training.figures import Row, image_grid
from specklenet.training.metrics import METRICS

TABLE1_CASES = ("1", "2", "3", "4a", "4b", "4c")
METRIC_NAMES = {"pcc": "PCC", "ssim": "SSIM", "cs": "CS"}


@dataclass(frozen=True)
class Report:
    """Where the report went."""

    markdown_path: Path
    table_csv: Path
    table_markdown: Path
    figures: list[Path]
    checks: list[tuple[str, bool | None, str]]


def write_report(results: dict[str, dict[str, Any]], out: Path, settings: dict[str, Any]) -> Report:
    """Write tables, figures and report.md for ``results`` (case name → result.json contents)."""
    table_csv, table_md = _table1(results, out)
    figures = [
        path
        for path in (_fig3(results, out), _fig4(results.get("5"), out), _fig_s6(results.get("SI"), out))
        if path is not None
    ]
    checks = trend_checks(results)
    lines = [
        "# Reproduction of Zhang et al., *Cross-Dataset Generalization in Deep Learning*",
        "",
        _settings_text(settings),
        "",
        "## Training",
        "",
        "| case | training set | epochs | stopped | best val Dice (epoch) | untrained | simulate s "
        "| train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        t = result["training"]
        shared = "" if t["training_case"] == name else f" (run shared with case {t['training_case']})"
        lines.append(
            f"| {name} | {result['title']}{shared} | {t['epochs']} | {t['stopped']} | "
            f"{t['best_val_dice']:.3f} ({t['best_epoch']}) | {t['untrained_val_dice']:.3f} | "
            f"{t['seconds_simulating']:.0f} | {t['seconds_training']:.0f} |"
        )
    lines += ["", "## Training-set coverage", ""] + [f"- {r['coverage']}" for r in results.values()]
    lines += ["", "## Table 1 (SI): per-image metrics and held-out means", "", table_md.read_text()]
    lines += _case5_table(results.get("5")) + _si_table(results.get("SI"))
    lines += ["", "## The paper's trends", ""]
    for claim, passed, detail in checks:
        mark = {True: "✔ holds", False: "✘ does not hold", None: "– not run"}[passed]
        lines.append(f"- **{claim}**: {mark}. {detail}")
    lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    lines += [
        "",
        "Per-case analysis figures: `cases/<case>/analysis/`; per-set metrics: `cases/<case>/eval/`.",
    ]
    markdown = out / "report.md"
    markdown.write_text("\n".join(lines) + "\n")
    return Report(markdown, table_csv, table_md, figures, checks)


# --- tables ----------------------------------------------------------------------------------------------


def _table1(results: dict[str, dict[str, Any]], out: Path) -> tuple[Path, Path]:
    cases = [name for name in TABLE1_CASES if name in results] or list(results)
    csv_path, md_path = out / "table1.csv", out / "table1.md"
    with csv_path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["metric", "case", "test", "img1", "img2", "img3", "img4", "img5", "mean", "std", "n"]
        )
        for metric in METRICS:
            for name in cases:
                for kind in ("faces", "digits"):
                    test = results[name]["tests"].get(kind)
                    if test is None:
                        continue
                    stats = test["summary"][metric]
                    first = [f"{v:.4f}" for v in test["first"][metric]]
                    writer.writerow(
                        [
                            METRIC_NAMES[metric],
                            name,
                            kind,
                            *first,
                            f"{stats['mean']:.4f}",
                            f"{stats['std']:.4f}",
                            stats["n"],
                        ]
                    )
    lines = []
    for metric in METRICS:
        lines += [
            f"**{METRIC_NAMES[metric]}**",
            "",
            "| case | faces 1–5 | mean ± std (faces) | digits 1–5 | mean ± std (digits) |",
            "|---|---|---|---|---|",
        ]
        for name in cases:
            cells = []
            for kind in ("faces", "digits"):
                test = results[name]["tests"].get(kind)
                if test is None:
                    cells += ["–", "–"]
                    continue
                stats = test["summary"][metric]
                cells += [
                    " ".join(f"{v:.4f}" for v in test["first"][metric]),
                    f"{stats['mean']:.3f} ± {stats['std']:.3f} (n={stats['n']})",
                ]
            lines.append(f"| C#{name} | " + " | ".join(cells) + " |")
        lines.append("")
    md_path.write_text("\n".join(lines))
    return csv_path, md_path


def _case5_table(result: dict[str, Any] | None) -> list[str]:
    if result is None:
        return []
    lines = [
        "",
        "## Case 5: shifted targets (mean PCC ± std over the held-out set)",
        "",
        "| position | faces | digits |",
        "|---|---|---|",
    ]
    for position in ("", "-shift1", "-shift2"):
        cells = [_mean_pcc(result, f"{kind}{position}") for kind in ("faces", "digits")]
        lines.append(f"| {position.strip('-') or 'centre'} | " + " | ".join(cells) + " |")
    return lines


def _si_table(result: dict[str, Any] | None) -> list[str]:
    if result is None:
        return []
    lines = [
        "",
        "## SI: random placement (mean PCC ± std of digits at each position)",
        "",
        "| position | digits |",
        "|---|---|",
    ]
    for test in result["tests"]:
        lines.append(f"| {test.removeprefix('digits-')} | {_mean_pcc(result, test)} |")
    return lines


def _mean_pcc(result: dict[str, Any], test: str) -> str:
    if test not in result["tests"]:
        return "–"
    stats = result["tests"][test]["summary"]["pcc"]
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


# --- trend checks ----------------------------------------------------------------------------------------


def trend_checks(results: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """The paper's claims, each (claim, holds? — None when its cases were not run, details)."""

    def pcc(case: str, test: str) -> float | None:
        try:
            return float(results[case]["tests"][test]["summary"]["pcc"]["mean"])
        except KeyError:
            return None

    checks = []
    faces = {c: pcc(c, "faces") for c in TABLE1_CASES}
    ran = {c: v for c, v in faces.items() if v is not None}
    if faces["1"] is not None and len(ran) > 1:
        best = max(ran, key=ran.get)
        checks.append(("face PCC is highest in case 1", best == "1", _values("faces", ran)))
    else:
        checks.append(("face PCC is highest in case 1", None, ""))
    for low, highs in (("2", ("3",)), ("3", ("4a", "4b", "4c"))):
        present = [h for h in highs if faces[h] is not None]
        if faces[low] is None or not present:
            checks.append((f"face PCC rises from case {low} to {'/'.join(highs)}", None, ""))
            continue
        holds = all(faces[h] > faces[low] for h in present)
        shown = {c: faces[c] for c in (low, *present)}
        checks.append(
            (f"face PCC rises from case {low} to {'/'.join(present)}", holds, _values("faces", shown))
        )
    digits = {c: pcc(c, "digits") for c in ("2", "3", "4a", "4b", "4c")}
    others = {c: v for c, v in digits.items() if c != "2" and v is not None}
    if digits["2"] is not None and others:
        holds = all(v >= 0.9 * digits["2"] for v in others.values())
        detail = _values("digits", {"2": digits["2"], **others}) + " (threshold 0.9 × case 2)"
        checks.append(("digit PCC stays high in cases 3–4c", holds, detail))
    else:
        checks.append(("digit PCC stays high in cases 3–4c", None, ""))
    centre, shifted = (
        pcc("5", "faces"),
        [pcc("5", f"{k}-{s}") for k in ("faces", "digits") for s in ("shift1", "shift2")],
    )
    if centre is not None and None not in shifted:
        holds = max(shifted) < 0.5 * centre
        listed = ", ".join(f"{v:.3f}" for v in shifted)
        detail = f"centre faces {centre:.3f}; shifted faces/digits {listed} (threshold ½ centre)"
        checks.append(("case 5: shifted targets fail", holds, detail))
    else:
        checks.append(("case 5: shifted targets fail", None, ""))
    si = {t: v["summary"]["pcc"]["mean"] for t, v in results.get("SI", {}).get("tests", {}).items()}
    if si:
        holds = min(si.values()) >= 0.8 * max(si.values())
        checks.append(
            (
                "SI: random placement succeeds at every position",
                holds,
                _values("digits", si) + " (threshold 0.8 × best)",
            )
        )
    else:
        checks.append(("SI: random placement succeeds at every position", None, ""))
    return checks


def _values(kind: str, values: dict[str, float]) -> str:
    return f"mean {kind} PCC " + ", ".join(f"{k}: {v:.3f}" for k, v in values.items())


# --- figures ---------------------------------------------------------------------------------------------


def _first(out: Path, name: str, test: str) -> dict[str, np.ndarray]:
    with np.load(out / "cases" / name / "eval" / test / "first.npz") as data:
        return {key: data[key] for key in data.files}


def _frames(out: Path, result: dict[str, Any], test: str, count: int) -> np.ndarray:
    with read_pairs(out / result["tests"][test]["pairs"]) as pairs:
        frames = pairs.load_frames(pairs.complete_indices()[:count])
    return frames / frames.mean(axis=(1, 2), keepdims=True)


def _fig3(results: dict[str, dict[str, Any]], out: Path) -> Path | None:
    cases = [c for c in TABLE1_CASES if c in results and {"faces", "digits"} <= set(results[c]["tests"])]
    if not cases:
        return None
    reference = results[cases[0]]
    truth = np.concatenate([_first(out, cases[0], kind)["truth"] for kind in ("faces", "digits")])
    frames = np.concatenate([_frames(out, reference, kind, len(truth) // 2) for kind in ("faces", "digits")])
    rows = [Row("GT", truth), Row("Pattern", frames, speckle=True)]
    for name in cases:
        images = np.concatenate([_first(out, name, kind)["reconstruction"] for kind in ("faces", "digits")])
        notes = [
            f"{v:.2f}" for kind in ("faces", "digits") for v in results[name]["tests"][kind]["first"]["pcc"]
        ]
        rows.append(Row(f"C#{name}", images, notes))
    return image_grid(
        rows, out / "fig3.png", title="Reconstructions of test faces and digits (PCC lower right)"
    )


def _fig4(result: dict[str, Any] | None, out: Path) -> Path | None:
    if result is None:
        return None
    rows = []
    for position in ("", "-shift1", "-shift2"):
        label = position.strip("-") or "centre"
        tests = [
            f"{kind}{position}" for kind in ("faces", "digits") if f"{kind}{position}" in result["tests"]
        ]
        firsts = [_first(out, "5", test) for test in tests]
        frames = np.concatenate([_frames(out, result, test, 3) for test in tests])
        rows += [
            Row(f"GT {label}", np.concatenate([f["truth"][:3] for f in firsts])),
            Row(f"Pattern {label}", frames, speckle=True),
            Row(
                f"C#5 {label}",
                np.concatenate([f["reconstruction"][:3] for f in firsts]),
                [f"{v:.2f}" for test in tests for v in result["tests"][test]["first"]["pcc"][:3]],
            ),
        ]
    return image_grid(
        rows, out / "fig4-case5.png", title="Case 5: trained at the centre, tested at shifted positions"
    )


def _fig_s6(result: dict[str, Any] | None, out: Path) -> Path | None:
    if result is None:
        return None
    tests = list(result["tests"])
    firsts = [_first(out, "SI", test) for test in tests]
    rows = [
        Row("GT", np.stack([f["truth"][0] for f in firsts])),
        Row("Pattern", np.concatenate([_frames(out, result, test, 1) for test in tests]), speckle=True),
        Row(
            "C#SI",
            np.stack([f["reconstruction"][0] for f in firsts]),
            [f"{result['tests'][t]['first']['pcc'][0]:.2f}" for t in tests],
        ),
    ]
    return image_grid(
        rows,
        out / "figS6-si.png",
        title="SI: digits placed at random in training; one digit at 4 positions",
        column_titles=tests,
    )


def _settings_text(settings: dict[str, Any]) -> str:
    profile = settings["profile"]
    model = profile["model"]
    data = (
        settings["data_dir"]
        or "embedded low-resolution stand-ins (scikit-learn digits, scikit-image LFW subset)"
    )
    return (
        f"Profile **{profile['name']}**: U-Net depth {model['depth']}, base width {model['base_width']}, "
        f"{model['kernel_size']}×{model['kernel_size']} kernels, {model['resolution_px']}² output from "
        f"{model['frame_px']}² speckle; Adam {profile['learning_rate']:g}, batch {profile['batch_size']}, "
        f"≤ {profile['max_epochs']} epochs, early stopping on validation Dice "
        f"(patience {profile['patience']}). "
        f"{settings['n_train']} training targets per case, "
        f"{settings['n_test']} held-out test images per kind; "
        f"seed {settings['seed']}; data: {data}; speckle from the optical twin "
        f"({settings['twin']['fidelity']} fidelity, {settings['twin']['diffuser']} diffuser).\n\n"
        f"Settings: `{json.dumps({k: v for k, v in settings.items() if k != 'twin'}, sort_keys=True)}`"
    )
