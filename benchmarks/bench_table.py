"""The benchmarks' common table: rows of figures with their baselines, the machine they were measured on,
and the Markdown and JSON files ``run_all.py`` writes under ``benchmarks/results/``.

A benchmark script hands its figures over as rows (``row(...)``), never as printed text: its ``main(argv)``
returns ``{"rows": [...], ...}`` and ``--json PATH`` writes the same dict (``save``). A row's ratio is
figure / baseline, measured in the same run; ``better`` says which way is good (``"higher"`` for rates,
``"lower"`` for latencies and costs) so that a reader never guesses.

Only the standard library is imported here: the runner describes the machine without loading torch.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

COLUMNS = ("benchmark", "measurement", "figure", "baseline", "ratio", "unit", "notes")
# Distributions whose versions decide the figures; onnxruntime ships as onnxruntime-gpu here.
PACKAGES = ("numpy", "scipy", "torch", "onnxruntime-gpu", "onnxruntime", "pyzmq", "h5py", "msgpack")


def row(
    measurement: str,
    figure: float | None,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_label: str = "",
    ratio: float | None = None,
    better: str = "higher",
    notes: str = "",
) -> dict[str, Any]:
    """One measured figure beside its baseline (same run). ``ratio`` defaults to figure / baseline; pass it
    when the comparable number is something else (e.g. the median of per-round ratios)."""
    if better not in ("higher", "lower", ""):
        raise ValueError(f"better must be 'higher', 'lower' or '', not {better!r}")
    if ratio is None and figure is not None and baseline:
        ratio = figure / baseline
    return {
        "measurement": measurement,
        "figure": _number(figure),
        "unit": unit,
        "baseline": _number(baseline),
        "baseline_label": baseline_label,
        "ratio": _number(ratio),
        "better": better,
        "notes": notes,
        "status": "ok",
    }


def failed_row(benchmark: str, reason: str) -> dict[str, Any]:
    """The row standing for a benchmark that crashed, timed out or handed over nothing."""
    return {**row(f"{benchmark} (whole benchmark)", None, "", better="", notes=reason), "status": "failed"}


def save(figures: dict[str, Any], path: str | Path | None) -> dict[str, Any]:
    """Write a script's figures as JSON to ``path`` (when given); returns them for ``main`` to return."""
    if path is not None:
        Path(path).write_text(json.dumps(figures, indent=1, default=_plain))
    return figures


def _number(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples: whatever json cannot write on its own."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# --- the machine -------------------------------------------------------------------------------------


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, RAM, GPU, OS, Python and the versions that matter (no heavy imports)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "gpu": _gpu(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "hostname": platform.node(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (the machine is shared: say how loaded it was)."""
    return [round(value, 2) for value in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _gpu() -> str:
    """The NVIDIA GPUs nvidia-smi lists, or ``none``."""
    if shutil.which("nvidia-smi") is None:
        return "none"
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "none (nvidia-smi failed)"
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return "; ".join(names) if result.returncode == 0 and names else "none"


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=20, check=False, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def slug(machine: dict[str, Any], when: datetime.datetime) -> str:
    """File stem naming the machine and the time, e.g. ``amd-epyc-7b13-2cores-20250101T1726``."""
    cpu = re.sub(r"\((r|tm)\)|cpu|processor|\d+-core", "", machine["cpu"].lower())
    cpu = re.sub(r"@.*", "", cpu)
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-") or "unknown-cpu"
    first_gpu = machine["gpu"].split(";")[0].split(",")[0]  # the name, without memory and driver
    gpu = "" if machine["gpu"].startswith("none") else re.sub(r"[^a-z0-9]+", "-", first_gpu.lower())
    gpu = "-" + gpu[:24].strip("-") if gpu.strip("-") else ""
    return f"{cpu}-{machine['cores']}cores{gpu}-{when:%Y%m%dT%H%M}"


# --- the table ---------------------------------------------------------------------------------------


def format_number(value: float | None) -> str:
    """Three significant figures, no exponent for the sizes the benchmarks produce."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: title, machine block, notes, one table, then each benchmark's run."""
    machine, run = report["machine"], report["run"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    lines = [
        f"# specklenet benchmarks — {machine['cpu']}, {run['started']}",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {machine['cpu']}, {machine['cores']} cores |",
        f"| RAM | {machine['ram_gib']} GiB |",
        f"| GPU | {machine['gpu']} |",
        f"| OS | {machine['os']} |",
        f"| Python | {machine['python']} |",
        f"| packages | {packages} |",
        f"| load average (1/5/15 min) | start {_load(run['load_start'])}, end {_load(run['load_end'])} |",
        f"| commit | {machine['commit']}{' (uncommitted changes)' if machine['dirty'] else ''} |",
        f"| wall time | {run['wall_s']:.0f} s |",
        "",
    ]
    lines += [f"- {note}" for note in report.get("notes", [])]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(entry)) + " |" for entry in report["rows"]]
    lines += ["", "| benchmark | status | wall s | command |", "|---|---|---|---|"]
    for entry in report["benchmarks"]:
        command = " ".join(entry["command"])
        lines.append(f"| {entry['name']} | {entry['status']} | {entry['wall_s']:.0f} | `{command}` |")
    return "\n".join(lines) + "\n"


def _cells(entry: dict[str, Any]) -> list[str]:
    if entry["status"] != "ok":
        return [entry["benchmark"], entry["measurement"], "**FAILED**", "—", "—", "", _escape(entry["notes"])]
    baseline = format_number(entry["baseline"])
    if entry["baseline"] is not None and entry["baseline_label"]:
        baseline += f" ({entry['baseline_label']})"
    elif entry["baseline"] is None and entry["baseline_label"]:
        baseline = entry["baseline_label"]
    ratio = "—" if entry["ratio"] is None else _ratio(entry["ratio"])
    unit = entry["unit"] + {"higher": " ↑", "lower": " ↓"}.get(entry["better"], "")
    return [
        entry["benchmark"],
        _escape(entry["measurement"]),
        format_number(entry["figure"]),
        _escape(baseline),
        ratio,
        unit.strip(),
        _escape(entry["notes"]),
    ]


def _ratio(value: float) -> str:
    """Two decimals, or two significant figures below 0.1 (a small share must not read as 0.00)."""
    return f"{value:.2f}×" if value >= 0.095 or value == 0 else f"{value:.2g}×"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _load(values: list[float]) -> str:
    return "/".join(f"{value:.2f}" for value in values)


def write_report(report: dict[str, Any], folder: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>.md`` and ``<stem>.json`` in ``folder`` (created); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    md_path, json_path = folder / f"{stem}.md", folder / f"{stem}.json"
    md_path.write_text(markdown(report))
    json_path.write_text(json.dumps(report, indent=1, default=_plain) + "\n")
    return md_path, json_path
