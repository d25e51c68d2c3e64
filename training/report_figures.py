"""The report's figures: Figs. 3, 4 and S6 from the first seed's reconstructions, and every mean with its
95 % interval beside its constant-output baseline (``intervals.png``).

Inputs are the per-seed results of :mod:`.tasks` (``results[case][k]`` is seed k's result.json) and the
files they point to under the report folder. Matplotlib's Agg backend; not thread-safe (pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specklenet.daemon.records import read_pairs
from specklenet.training.checks import Summary
from specklenet.training.figures import Row, image_grid

Results = dict[str, list[dict[str, Any]]]
KINDS = ("faces", "digits", "scenes")


def _first(out: Path, case: str, test: str) -> dict[str, np.ndarray]:
    with np.load(out / "cases" / case / "seed0" / "eval" / test / "first.npz") as data:
        return {key: data[key] for key in data.files}


def _frames(out: Path, result: dict[str, Any], test: str, count: int) -> np.ndarray:
    with read_pairs(out / result["tests"][test]["pairs"]) as pairs:
        frames = pairs.load_frames(pairs.complete_indices()[:count])
    return frames / frames.mean(axis=(1, 2), keepdims=True)


def _notes(result: dict[str, Any], test: str, count: int) -> list[str]:
    return [f"{v:.2f}" for v in result["tests"][test]["metrics"]["pcc"][:count]]


def fig3(results: Results, cases: list[str], out: Path) -> Path | None:
    """Fig. 3: ground truth, speckle and each case's reconstructions (seed 0) of the first test images."""
    cases = [c for c in cases if c in results and {"faces", "digits"} <= set(results[c][0]["tests"])]
    if not cases:
        return None
    reference = results[cases[0]][0]
    kinds = [k for k in KINDS if all(k in results[c][0]["tests"] for c in cases)]
    truth = np.concatenate([_first(out, cases[0], kind)["truth"] for kind in kinds])
    count = len(_first(out, cases[0], kinds[0])["truth"])
    frames = np.concatenate([_frames(out, reference, kind, count) for kind in kinds])
    rows = [Row("GT", truth), Row("Pattern", frames, speckle=True)]
    for name in cases:
        images = np.concatenate([_first(out, name, kind)["reconstruction"] for kind in kinds])
        notes = [n for kind in kinds for n in _notes(results[name][0], kind, count)]
        rows.append(Row(f"C#{name}", images, notes))
    title = f"Reconstructions of test {', '.join(kinds)} (seed 0; PCC lower right)"
    return image_grid(rows, out / "fig3.png", title=title)


def fig4(results: Results, out: Path) -> Path | None:
    """Fig. 4: case 5 at the centre and at the shifted positions; truth = the canvas in the window."""
    if "5" not in results:
        return None
    result = results["5"][0]
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
                [n for test in tests for n in _notes(result, test, 3)],
            ),
        ]
    title = "Case 5: trained at the centre; the output window at shifted positions (GT: canvas in the window)"
    return image_grid(rows, out / "fig4-case5.png", title=title)


def fig_s6(results: Results, out: Path) -> Path | None:
    """Fig. S6: the SI model on one digit at the four positions."""
    if "SI" not in results:
        return None
    result = results["SI"][0]
    tests = list(result["tests"])
    firsts = [_first(out, "SI", test) for test in tests]
    rows = [
        Row("GT", np.stack([f["truth"][0] for f in firsts])),
        Row("Pattern", np.concatenate([_frames(out, result, test, 1) for test in tests]), speckle=True),
        Row(
            "C#SI",
            np.stack([f["reconstruction"][0] for f in firsts]),
            [_notes(result, t, 1)[0] for t in tests],
        ),
    ]
    return image_grid(
        rows,
        out / "figS6-si.png",
        title="SI: digits placed at random in training; one digit at 4 positions",
        column_titles=tests,
    )


def intervals(summary: Summary, out: Path, *, title: str) -> Path | None:
    """Mean PCC with its 95 % interval per case and test, beside the constant-output baseline (grey)."""
    entries = [(case, test, e["pcc"]) for case, tests in summary.items() for test, e in tests.items()]
    if not entries:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(max(6.0, 0.42 * len(entries) + 1.5), 3.8), layout="constrained")
    colours = {"faces": "tab:orange", "digits": "tab:red", "scenes": "tab:green"}
    for x, (_case, test, entry) in enumerate(entries):
        for estimate, colour, offset in (
            (entry["baseline"], "0.6", 0.18),
            (entry["estimate"], colours.get(test.split("-")[0], "tab:blue"), 0.0),
        ):
            axis.errorbar(
                x + offset,
                estimate.mean,
                yerr=[[estimate.mean - estimate.low], [estimate.high - estimate.mean]],
                fmt="o" if offset == 0 else "_",
                color=colour,
                capsize=2,
                markersize=4,
            )
    axis.set_xticks(range(len(entries)), [f"{c}: {t}" for c, t, _ in entries], rotation=70, fontsize=7)
    axis.set_ylabel("PCC (95 % interval)")
    axis.axhline(0, color="0.8", linewidth=0.8)
    axis.set_title(title + " — grey: constant-output baseline", fontsize=9)
    path = out / "intervals.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
