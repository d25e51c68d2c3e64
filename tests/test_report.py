"""The paper's trend checks on hand-made results (no training needed)."""

from __future__ import annotations

from specklenet.training.report import trend_checks


def _result(**pcc_means: float) -> dict:
    return {
        "tests": {test.replace("_", "-"): {"summary": {"pcc": {"mean": v}}} for test, v in pcc_means.items()}
    }


PAPER_LIKE = {  # the paper's SI Table 1 means, case 5 and SI made up in the paper's spirit
    "1": _result(faces=0.838, digits=0.784),
    "2": _result(faces=0.296, digits=0.957),
    "3": _result(faces=0.371, digits=0.891),
    "4a": _result(faces=0.394, digits=0.918),
    "4b": _result(faces=0.561, digits=0.934),
    "4c": _result(faces=0.582, digits=0.941),
    "5": _result(
        faces=0.84, digits=0.8, faces_shift1=0.1, digits_shift1=0.05, faces_shift2=0.12, digits_shift2=0.0
    ),
    "SI": _result(digits_p1=0.9, digits_p2=0.88, digits_p3=0.91, digits_p4=0.86),
}


def _verdicts(results: dict) -> dict[str, bool | None]:
    return {claim: holds for claim, holds, _ in trend_checks(results)}


def test_the_papers_own_numbers_pass_every_check() -> None:
    verdicts = _verdicts(PAPER_LIKE)
    assert len(verdicts) == 6
    assert all(verdicts.values()), verdicts


def test_each_claim_fails_when_its_numbers_say_so() -> None:
    broken = dict(PAPER_LIKE)
    broken["2"] = _result(faces=0.9, digits=0.957)  # case 2 beats case 1 on faces, and case 3
    broken["4b"] = _result(faces=0.2, digits=0.5)  # 4b below case 3 on faces; digits collapse
    broken["5"] = _result(
        faces=0.84, digits=0.8, faces_shift1=0.7, digits_shift1=0.05, faces_shift2=0.1, digits_shift2=0
    )
    broken["SI"] = _result(digits_p1=0.9, digits_p2=0.2, digits_p3=0.91, digits_p4=0.86)
    verdicts = _verdicts(broken)
    assert verdicts["face PCC is highest in case 1"] is False
    assert verdicts["face PCC rises from case 2 to 3"] is False
    assert verdicts["face PCC rises from case 3 to 4a/4b/4c"] is False
    assert verdicts["digit PCC stays high in cases 3–4c"] is False
    assert verdicts["case 5: shifted targets fail"] is False
    assert verdicts["SI: random placement succeeds at every position"] is False


def test_claims_whose_cases_did_not_run_are_marked_not_run() -> None:
    verdicts = _verdicts({"2": PAPER_LIKE["2"]})
    assert set(verdicts.values()) == {None}
