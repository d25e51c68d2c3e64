"""Per-case estimates over seeds and images, and the paper's claims decided on their intervals.

:func:`summarise` turns the per-seed results of :mod:`.tasks` (per-image metrics of every test set and
of the constant-output baseline) into an :class:`Estimate` with a 95 % bootstrap interval for every
case × test × metric, and the same for the baseline (:mod:`.statistics`). :func:`trend_checks` states
each claim, decides it on intervals and gives its numbers:

* face PCC is highest in case 1 (clearly above every other case of Table 1);
* face PCC rises from case 2 to 3, and from 3 to each of 4a/4b/4c (clearly above);
* digit PCC stays high in cases 3–4c: each clearly above its baseline and not shown below 0.9 × case 2's;
* case 5, per kind (faces, digits): the network works at the centre (clearly above its baseline) and
  fails at each shifted position: clearly below the centre, and either not above its own baseline or
  below half the centre's lower bound. Scored against the canvas inside the output
  window (what Fig. 4 shows), so an exact inverse passes every position and this claim fails for it;
* SI: every position clearly above its baseline and not shown below 0.8 × the best position's;
* designed: faces not below case 1's, digits not below case 2's, scenes (which neither dataset holds)
  not below cases 1 and 2 — each also clearly above its own baseline.

A claim whose cases were not run is ``None`` ("not run"); overlapping intervals never confirm a trend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specklenet.training.metrics import METRICS
from specklenet.training.statistics import Estimate, bootstrap_mean, clearly_above, not_below

TABLE1_CASES = ("1", "2", "3", "4a", "4b", "4c")
Summary = dict[str, dict[str, dict[str, dict[str, Any]]]]  # case → test → metric → entry
Check = tuple[str, bool | None, str]


def summarise(results: dict[str, list[dict[str, Any]]]) -> Summary:
    """case → test → metric → ``{"estimate", "baseline": Estimate, "std": spread over all images}``.

    ``results``: case → its per-seed result dicts (``tests[name]["metrics"|"baseline"][metric]``: one
    value per test image, the same images in every seed).
    """
    summary: Summary = {}
    for case, runs in results.items():
        if not runs:
            continue
        summary[case] = {}
        for test in runs[0]["tests"]:
            summary[case][test] = {}
            for metric in METRICS:
                values = np.array([run["tests"][test]["metrics"][metric] for run in runs])
                baseline = np.array([run["tests"][test]["baseline"][metric] for run in runs])
                summary[case][test][metric] = {
                    "estimate": bootstrap_mean(values),
                    "baseline": bootstrap_mean(baseline),
                    "std": float(values.std()),
                }
    return summary


def trend_checks(summary: Summary) -> list[Check]:
    """The claims of the module docstring, each ``(claim, holds or None when not run, details)``."""
    pcc = _Lookup(summary)
    return [
        _highest_in_case_1(pcc),
        *_rises(pcc),
        _digits_stay_high(pcc),
        _case5_shifts_fail(pcc),
        _si_succeeds(pcc),
        *_designed(pcc),
    ]


class _Lookup:
    """PCC estimates and baselines by (case, test); None when absent."""

    def __init__(self, summary: Summary) -> None:
        self.summary = summary

    def __call__(self, case: str, test: str) -> Estimate | None:
        entry = self.summary.get(case, {}).get(test, {}).get("pcc")
        return entry["estimate"] if entry else None

    def baseline(self, case: str, test: str) -> Estimate:
        return self.summary[case][test]["pcc"]["baseline"]

    def above_baseline(self, case: str, test: str) -> bool:
        return clearly_above(self(case, test), self.baseline(case, test))  # type: ignore[arg-type]


def _text(label: str, estimate: Estimate, baseline: Estimate | None = None) -> str:
    shown = f"{label} {estimate.text()}"
    return shown + (f" (baseline {baseline.text()})" if baseline is not None else "")


def _highest_in_case_1(pcc: _Lookup) -> Check:
    claim = "face PCC is highest in case 1"
    others = {c: pcc(c, "faces") for c in TABLE1_CASES[1:] if pcc(c, "faces") is not None}
    first = pcc("1", "faces")
    if first is None or not others:
        return claim, None, ""
    holds = all(clearly_above(first, other) for other in others.values())  # type: ignore[arg-type]
    detail = "; ".join(_text(c, e) for c, e in {"1": first, **others}.items())  # type: ignore[arg-type]
    return claim, holds, f"faces PCC {detail}"


def _rises(pcc: _Lookup) -> list[Check]:
    checks = []
    for low, highs in (("2", ("3",)), ("3", ("4a", "4b", "4c"))):
        present = [h for h in highs if pcc(h, "faces") is not None]
        base = pcc(low, "faces")
        claim = f"face PCC rises from case {low} to {'/'.join(present or highs)}"
        if base is None or not present:
            checks.append((claim, None, ""))
            continue
        holds = all(clearly_above(pcc(h, "faces"), base) for h in present)  # type: ignore[arg-type]
        shown = "; ".join(_text(c, pcc(c, "faces"), pcc.baseline(c, "faces")) for c in (low, *present))  # type: ignore[arg-type]
        checks.append((claim, holds, f"faces PCC {shown}"))
    return checks


def _digits_stay_high(pcc: _Lookup) -> Check:
    claim = "digit PCC stays high in cases 3–4c"
    reference = pcc("2", "digits")
    others = [c for c in ("3", "4a", "4b", "4c") if pcc(c, "digits") is not None]
    if reference is None or not others:
        return claim, None, ""
    floor = 0.9 * reference.low
    holds = all(pcc(c, "digits").high >= floor and pcc.above_baseline(c, "digits") for c in others)  # type: ignore[union-attr]
    shown = "; ".join(_text(c, pcc(c, "digits"), pcc.baseline(c, "digits")) for c in ("2", *others))  # type: ignore[arg-type]
    return claim, holds, f"digits PCC {shown} (each must reach 0.9 × case 2's lower bound = {floor:.3f})"


def _case5_shifts_fail(pcc: _Lookup) -> Check:
    claim = "case 5: shifted targets fail (the output window against the canvas inside it)"
    tests = pcc.summary.get("5", {})
    kinds = [k for k in ("faces", "digits") if k in tests]
    if not kinds or not any("-shift" in t for t in tests):
        return claim, None, ""
    holds, parts = True, []
    for kind in kinds:
        centre = pcc("5", kind)
        works = pcc.above_baseline("5", kind)
        holds &= works
        parts.append(
            _text(f"{kind} centre", centre, pcc.baseline("5", kind)) + ("" if works else " ✘ at baseline")
        )  # type: ignore[arg-type]
        for test in sorted(t for t in tests if t.startswith(f"{kind}-shift")):
            shifted = pcc("5", test)
            # failed: clearly below the centre, and either at its baseline or below half the centre
            collapsed = shifted.high < 0.5 * centre.low or not pcc.above_baseline("5", test)  # type: ignore[union-attr]
            fails = clearly_above(centre, shifted) and collapsed  # type: ignore[arg-type]
            holds &= fails
            parts.append(_text(test, shifted, pcc.baseline("5", test)) + ("" if fails else " ✘ did not fail"))  # type: ignore[arg-type]
    return claim, holds, "PCC " + "; ".join(parts)


def _si_succeeds(pcc: _Lookup) -> Check:
    claim = "SI: random placement succeeds at every position"
    tests = list(pcc.summary.get("SI", {}))
    if not tests:
        return claim, None, ""
    best = max(tests, key=lambda t: pcc("SI", t).mean)  # type: ignore[union-attr]
    floor = 0.8 * pcc("SI", best).low  # type: ignore[union-attr]
    holds, parts = True, []
    for test in tests:
        ok = pcc.above_baseline("SI", test) and pcc("SI", test).high >= floor  # type: ignore[arg-type]
        holds &= ok
        parts.append(_text(test, pcc("SI", test), pcc.baseline("SI", test)) + ("" if ok else " ✘"))  # type: ignore[arg-type]
    return (
        claim,
        holds,
        "digits PCC "
        + "; ".join(parts)
        + f" (each above its baseline and reaching 0.8 × {best}'s lower bound = {floor:.3f})",
    )


def _designed(pcc: _Lookup) -> list[Check]:
    checks = []
    for kind, references in (("faces", ("1",)), ("digits", ("2",)), ("scenes", ("1", "2"))):
        claim = f"designed: {kind} at least as well as case {' and '.join(references)}"
        own = pcc("designed", kind)
        present = [r for r in references if pcc(r, kind) is not None]
        if own is None or not present:
            checks.append((claim, None, ""))
            continue
        holds = pcc.above_baseline("designed", kind) and all(not_below(own, pcc(r, kind)) for r in present)  # type: ignore[arg-type]
        shown = "; ".join(_text(c, pcc(c, kind), pcc.baseline(c, kind)) for c in ("designed", *present))  # type: ignore[arg-type]
        checks.append((claim, holds, f"{kind} PCC {shown} (not below: intervals not wholly below)"))
    return checks
