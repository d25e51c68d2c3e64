"""``make bench``'s runner and table (benchmarks/run_all.py, benchmarks/bench_table.py), on fake results
and tiny stand-in scripts: the real benchmarks are never run here (speed is not measured in tests)."""

from __future__ import annotations

import datetime
import json
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_table  # noqa: E402
import run_all  # noqa: E402

MACHINE = {
    "cpu": "AMD EPYC 7B13 64-Core Processor",
    "cores": 2,
    "ram_gib": 7.8,
    "gpu": "none",
    "os": "Linux-6.1-x86_64",
    "python": "3.11.9",
    "packages": {"numpy": "2.1.0", "torch": "2.13.0+cpu", "onnxruntime-gpu": "1.22.0"},
    "hostname": "bench",
    "commit": "abc1234",
    "dirty": False,
}
RUN = {"started": "2026-01-01T17:26:00+00:00", "load_start": [3.5, 3.1, 2.9], "load_end": [6.25, 4.0, 3.0]}


def fake_results() -> list:
    rows = [
        bench_table.row("fused path", 250.0, "frames/s", baseline=125.0, baseline_label="generic path"),
        bench_table.row("overhead p99", 1.5, "ms", baseline=6.0, baseline_label="naive loop", better="lower"),
    ]
    entry = {"name": "twin", "command": ["twin.py", "--frames", "32"], "wall_s": 60.0, "status": "ok"}
    failed = [{"benchmark": "live", **bench_table.failed_row("live", "timed out after 240 s")}]
    live = {"name": "live", "command": ["live.py"], "wall_s": 240.0, "status": "failed"}
    return [([{"benchmark": "twin", **r} for r in rows], entry, ["twin: a note"]), (failed, live, [])]


def test_report_has_the_machine_block_the_rows_and_the_failed_benchmark(tmp_path: Path) -> None:
    report = run_all.assemble(fake_results(), MACHINE, {**RUN, "wall_s": 300.0, "only": ["twin", "live"]})
    md_path, json_path = bench_table.write_report(report, tmp_path / "results", "stem")

    text = md_path.read_text()
    assert "| CPU | AMD EPYC 7B13 64-Core Processor, 2 cores |" in text
    assert "start 3.50/3.10/2.90, end 6.25/4.00/3.00" in text
    assert "torch 2.13.0+cpu" in text and "| GPU | none |" in text
    assert "| twin | fused path | 250 | 125 (generic path) | 2.00× | frames/s ↑ |" in text
    assert "| twin | overhead p99 | 1.50 | 6.00 (naive loop) | 0.25× | ms ↓ |" in text
    assert "| live | live (whole benchmark) | **FAILED** |" in text and "timed out after 240 s" in text
    assert "- twin: a note" in text and "No GPU on this machine" in text

    saved = json.loads(json_path.read_text())
    assert saved["machine"] == MACHINE
    assert saved["run"]["load_end"] == [6.25, 4.0, 3.0]
    assert [r["status"] for r in saved["rows"]] == ["ok", "ok", "failed"]
    assert saved["rows"][0]["ratio"] == 2.0 and saved["rows"][0]["benchmark"] == "twin"
    assert [b["status"] for b in saved["benchmarks"]] == ["ok", "failed"]


def test_row_ratio_direction_and_non_finite_figures() -> None:
    assert bench_table.row("a", 3.0, "ms", baseline=12.0, better="lower")["ratio"] == 0.25
    assert bench_table._ratio(0.0651) == "0.065×" and bench_table._ratio(2.0) == "2.00×"
    assert bench_table.row("a", 3.0, "ms", baseline=12.0, ratio=0.5)["ratio"] == 0.5  # e.g. median of rounds
    missing = bench_table.row("a", float("nan"), "ms", baseline=0.0)
    assert missing["figure"] is None and missing["ratio"] is None
    with pytest.raises(ValueError, match="better"):
        bench_table.row("a", 1.0, "ms", better="faster")


def test_file_name_says_which_machine_and_when() -> None:
    when = datetime.datetime(2026, 1, 1, 17, 26)
    assert bench_table.slug(MACHINE, when) == "amd-epyc-7b13-2cores-20260101T1726"
    gpu = {**MACHINE, "gpu": "NVIDIA H200, 143771 MiB, 550.54"}
    assert bench_table.slug(gpu, when) == "amd-epyc-7b13-2cores-nvidia-h200-20260101T1726"


def script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return str(path)


GOOD = """
    import json, sys
    print("human table")
    path = sys.argv[sys.argv.index("--json") + 1]
    row = {"measurement": "m", "figure": 2.0, "unit": "frames/s", "baseline": 1.0, "baseline_label": "b",
           "ratio": 2.0, "better": "higher", "notes": "", "status": "ok"}
    json.dump({"rows": [row], "notes": ["from the script"]}, open(path, "w"))
"""


def test_each_failing_benchmark_becomes_a_failed_row(tmp_path: Path) -> None:
    benches = [
        run_all.Benchmark("good", script(tmp_path, "good.py", GOOD), ("--x",), 60),
        run_all.Benchmark(
            "crash", script(tmp_path, "crash.py", "raise SystemExit('broken on purpose')"), (), 60
        ),
        run_all.Benchmark("silent", script(tmp_path, "silent.py", "print('no figures')"), (), 60),
        run_all.Benchmark("hang", script(tmp_path, "hang.py", "import time\ntime.sleep(600)"), (), 1),
    ]
    results = {b.name: run_all.run_benchmark(b, tmp_path, echo=False) for b in benches}

    rows, entry, notes = results["good"]
    assert entry["status"] == "ok" and entry["command"] == ["good.py", "--x"]
    assert rows == [{"benchmark": "good", **json.loads((tmp_path / "good.json").read_text())["rows"][0]}]
    assert notes == ["good: from the script"]
    on_gpu = run_all.Benchmark("good", benches[0].script, ("--x",), 60, gpu_args=("--gpu",))
    _, entry, _ = run_all.run_benchmark(on_gpu, tmp_path, echo=False, gpu=True)
    assert entry["command"] == ["good.py", "--x", "--gpu"]
    for name, reason in (
        ("crash", "exited with status 1; last output: broken"),
        ("silent", "exited 0 but handed over no figures"),
        ("hang", "timed out after 1 s"),
    ):
        (failed,), entry, _ = results[name]
        assert entry["status"] == "failed" and failed["status"] == "failed", name
        assert failed["benchmark"] == name and reason in failed["notes"], (name, failed["notes"])


def test_main_writes_one_table_and_reports_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        run_all,
        "BENCHMARKS",
        (
            run_all.Benchmark("good", script(tmp_path, "good.py", GOOD)),
            run_all.Benchmark("crash", script(tmp_path, "crash.py", "raise SystemExit(3)")),
        ),
    )
    assert run_all.main(["--output", str(tmp_path / "out")]) == 1
    (md_path,) = (tmp_path / "out").glob("*.md")
    (json_path,) = (tmp_path / "out").glob("*.json")
    assert md_path.stem == json_path.stem and md_path.stem.split("-")[-2].endswith("cores")
    text = md_path.read_text()
    assert "| good | m | 2.00 | 1.00 (b) | 2.00× | frames/s ↑ |" in text
    assert "| crash | crash (whole benchmark) | **FAILED** |" in text and "exited with status 3" in text
    assert run_all.main(["--only", "good", "--output", str(tmp_path / "only")]) == 0
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.main(["--only", "nope"])


@pytest.mark.parametrize("bench", run_all.BENCHMARKS, ids=lambda bench: bench.name)
def test_every_benchmark_script_hands_its_figures_over(bench: run_all.Benchmark) -> None:
    source = (BENCHMARKS / bench.script).read_text()
    assert '"--json"' in source and "save(" in source and "def main(argv" in source


@pytest.mark.parametrize(("rounds", "expected"), [(5, None), (6, (1, 6)), (9, (2, 8)), (20, (6, 15))])
def test_twin_median_interval_uses_the_binomial_order_statistics(rounds: int, expected) -> None:
    """The 95 % interval of a median over rounds: ranks from the binomial tail, none for too few rounds."""
    import numpy as np
    from scipy import stats
    from twin import median_interval

    values = np.random.default_rng(rounds).permutation(np.arange(1.0, rounds + 1))  # rank r has value r
    low, high = median_interval(values)
    if expected is None:
        assert np.isnan(low) and np.isnan(high)
        return
    assert (low, high) == expected
    k = int(low)  # coverage of [x(k), x(n+1-k)] is 1 - 2 P(B <= k - 1), and k is the largest that keeps it
    assert 1 - 2 * stats.binom.cdf(k - 1, rounds, 0.5) >= 0.95 > 1 - 2 * stats.binom.cdf(k, rounds, 0.5)
