"""The paper's claims decided on intervals, on hand-made per-image results (no training needed)."""

from __future__ import annotations

import numpy as np

from specklenet.training.checks import summarise, trend_checks

N_IMAGES = 50


def _values(mean: float, spread: float, seed: int) -> list[float]:
    """50 per-image values with exactly this mean and about this spread."""
    values = np.random.default_rng(seed).normal(0.0, spread, N_IMAGES)
    return (values - values.mean() + mean).tolist()


def _result(spread: float = 0.05, baseline: float = 0.1, **pcc_means: float) -> list[dict]:
    tests = {}
    for number, (test, mean) in enumerate(pcc_means.items()):
        measured = _values(mean, spread, number)
        base = _values(baseline, spread, 100 + number)
        tests[test.replace("_", "-")] = {
            "metrics": {m: measured for m in ("pcc", "ssim", "cs")},
            "baseline": {m: base for m in ("pcc", "ssim", "cs")},
        }
    return [{"tests": tests}]


PAPER_LIKE = {  # the paper's SI Table 1 means; case 5, SI and designed made up in the paper's spirit
    "1": _result(faces=0.838, digits=0.784, scenes=0.7),
    "2": _result(faces=0.296, digits=0.957, scenes=0.3),
    "3": _result(faces=0.371, digits=0.891),
    "4a": _result(faces=0.454, digits=0.918),
    "4b": _result(faces=0.561, digits=0.934),
    "4c": _result(faces=0.582, digits=0.941),
    "5": _result(
        faces=0.84, digits=0.8, faces_shift1=0.1, digits_shift1=0.05, faces_shift2=0.12, digits_shift2=0.0
    ),
    "SI": _result(digits_p1=0.9, digits_p2=0.88, digits_p3=0.91, digits_p4=0.86),
    "designed": _result(faces=0.85, digits=0.95, scenes=0.8),
}


def _verdicts(results: dict) -> dict[str, bool | None]:
    return {claim.split(" (")[0]: holds for claim, holds, _ in trend_checks(summarise(results))}


def test_the_papers_own_numbers_pass_every_check() -> None:
    verdicts = _verdicts(PAPER_LIKE)
    assert len(verdicts) == 9
    assert all(verdicts.values()), verdicts


def test_each_claim_fails_when_its_numbers_say_so() -> None:
    broken = dict(PAPER_LIKE)
    broken["2"] = _result(faces=0.9, digits=0.957)  # case 2 beats case 1 on faces, and case 3
    broken["4b"] = _result(faces=0.2, digits=0.5)  # 4b below case 3 on faces; digits collapse
    broken["5"] = _result(
        faces=0.84, digits=0.8, faces_shift1=0.7, digits_shift1=0.05, faces_shift2=0.1, digits_shift2=0
    )
    broken["SI"] = _result(digits_p1=0.9, digits_p2=0.2, digits_p3=0.91, digits_p4=0.86)
    broken["designed"] = _result(faces=0.5, digits=0.95, scenes=0.8)
    verdicts = _verdicts(broken)
    assert verdicts["face PCC is highest in case 1"] is False
    assert verdicts["face PCC rises from case 2 to 3"] is False
    assert verdicts["face PCC rises from case 3 to 4a/4b/4c"] is False
    assert verdicts["digit PCC stays high in cases 3–4c"] is False
    assert verdicts["case 5: shifted targets fail"] is False
    assert verdicts["SI: random placement succeeds at every position"] is False
    assert verdicts["designed: faces at least as well as case 1"] is False
    assert verdicts["designed: digits at least as well as case 2"] is True


def test_a_rise_within_the_noise_is_not_a_rise() -> None:
    # The numbers: case 2 faces 0.235, case 3 0.289, at the constant-output level, spread 0.15
    # over 50 faces. A strict '>' on the means says "rises"; the intervals overlap, so it is not shown.
    noisy = {"2": _result(0.15, 0.3, faces=0.235), "3": _result(0.15, 0.3, faces=0.289)}
    assert _verdicts(noisy)["face PCC rises from case 2 to 3"] is False
    clear = {"2": _result(0.15, 0.3, faces=0.235), "3": _result(0.15, 0.3, faces=0.45)}
    assert _verdicts(clear)["face PCC rises from case 2 to 3"] is True


def test_case_5_needs_the_centre_to_work_before_shifts_can_fail() -> None:
    # A network at its constant-output level at the centre, lower at the shifts (the mean centre target
    # overlaps a shifted target less): nothing was learnt, so nothing can fail to transfer.
    at_baseline = _result(baseline=0.48, digits=0.48, digits_shift1=0.1, digits_shift2=0.0)
    assert _verdicts({"5": at_baseline})["case 5: shifted targets fail"] is False
    working = _result(baseline=0.48, digits=0.9, digits_shift1=0.1, digits_shift2=0.0)
    assert _verdicts({"5": working})["case 5: shifted targets fail"] is True


def test_digits_must_beat_their_baseline_to_stay_high() -> None:
    # The 'ci' digits of case 3 at 0.9 × case 2 but below the mean digit's own score: not "high".
    results = {"2": _result(baseline=0.2, digits=0.5), "3": _result(baseline=0.68, digits=0.48)}
    assert _verdicts(results)["digit PCC stays high in cases 3–4c"] is False


def test_claims_whose_cases_did_not_run_are_marked_not_run() -> None:
    verdicts = _verdicts({"2": PAPER_LIKE["2"]})
    assert set(verdicts.values()) == {None}


def test_more_seeds_are_pooled_into_one_interval() -> None:
    one = _result(faces=0.5)
    two = one + _result(faces=0.6)
    summary = summarise({"1": two})
    estimate = summary["1"]["faces"]["pcc"]["estimate"]
    assert (estimate.n_seeds, estimate.n_images) == (2, N_IMAGES)
    assert abs(estimate.mean - 0.55) < 1e-9
