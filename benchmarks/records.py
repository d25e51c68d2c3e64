"""Pairs-file throughput: recording rate (the bench needs well over 150 frames/s) and training reads.

Measured side by side in one run, on the same 256×256 frames of float32 binned mean counts (as the
camera delivers them; the writer stores them as uint16 binned sums):
  * PairsWriter, every frame committed (the default: data flush, then complete flag flush);
  * PairsWriter, frames committed in batches every 0.1 s;
  * plain h5py writes of the same dataset without SWMR or flushes (fast, but loses everything on
    SIGKILL: the reference point for what crash safety costs);
  * reading a random half of the frames with Pairs.load_frames vs h5py fancy indexing;
  * the file size per frame against float32 storage.

Usage: python benchmarks/records.py [--frames 2000] [--dir /tmp] [--json PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from bench_table import row, save

from specklenet.daemon.records import PairsWriter, Targets, read_pairs


def record(path: Path, targets: Targets, frames: np.ndarray, interval_s: float) -> float:
    start = time.perf_counter()
    with PairsWriter.create(
        path, targets, source="twin", acquisition={}, flush_interval_s=interval_s
    ) as writer:
        for index, frame in enumerate(frames):
            writer.write(index, frame, frame_id=index, timestamp_ns=time.time_ns())
    return len(frames) / (time.perf_counter() - start)


def plain(path: Path, frames: np.ndarray) -> float:
    start = time.perf_counter()
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset("frames", frames.shape, np.float32, chunks=(1, *frames.shape[1:]))
        for index, frame in enumerate(frames):
            dataset[index] = frame
    return len(frames) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    """Print the figures; return (and with ``--json PATH`` write) them as table rows."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON rows to this file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    # A few distinct frames cycled: generating 2000 random frames would dominate the run. Camera
    # frames: 4×4 binned sums of 12-bit pixels, handed over as means (sum / 16).
    sums = rng.integers(16 * 16, 16 * 4095, (16, 256, 256))
    distinct = sums.astype(np.float32) * np.float32(1 / 16)
    frames = distinct[np.arange(args.frames) % 16]
    targets = Targets.from_canvases(np.zeros((args.frames, 128, 128), np.uint8))
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        base = Path(folder)
        each = record(base / "each.h5", targets, frames, 0.0)
        batched = record(base / "batched.h5", targets, frames, 0.1)
        unsafe = plain(base / "plain.h5", frames)
        print(f"{args.frames} frames of 256×256 float32 ({frames[0].nbytes / 2**10:.0f} KiB each)")
        stored = (base / "each.h5").stat().st_size / args.frames
        as_float = (base / "plain.h5").stat().st_size / args.frames
        print(
            f"{'file size per frame':<32}: {stored / 2**10:7.1f} KiB  "
            f"{stored / as_float:.2f}× float32 storage ({as_float / 2**10:.1f} KiB)"
        )
        show("PairsWriter, commit every frame", each, f"{each / 150:.1f}× the 150 fps the bench needs")
        show("PairsWriter, commit every 0.1 s", batched, f"{batched / each:.2f}× per-frame commits")
        show("plain h5py, no SWMR, no flush", unsafe, f"{unsafe / each:.2f}× per-frame commits")
        each_frame = "PairsWriter, every frame committed"
        rows = [
            row(
                "pairs file: size per frame",
                stored / 2**10,
                "KiB",
                baseline=as_float / 2**10,
                baseline_label="float32 storage",
                better="lower",
                notes="uint16 binned sums",
            ),
            row(
                f"pairs file: {each_frame} (crash-safe)",
                each,
                "frames/s",
                baseline=150.0,
                baseline_label="the camera's 150/s",
                notes=f"{args.frames} frames of 256²",
            ),
            row(
                "pairs file: PairsWriter, commits every 0.1 s",
                batched,
                "frames/s",
                baseline=each,
                baseline_label=each_frame,
            ),
            row(
                "pairs file: plain h5py, no SWMR, no flush (unsafe)",
                unsafe,
                "frames/s",
                baseline=each,
                baseline_label=each_frame,
                notes="what crash safety costs",
            ),
        ]
        with read_pairs(base / "each.h5") as pairs:
            wanted = rng.permutation(args.frames)[: args.frames // 2]
            start = time.perf_counter()
            pairs.load_frames(wanted)
            direct = len(wanted) / (time.perf_counter() - start)
            start = time.perf_counter()
            pairs.frames.dataset[np.sort(wanted)]  # raw h5py, without decoding
            fancy = len(wanted) / (time.perf_counter() - start)
        show("load_frames, random half", direct, f"{direct / fancy:.1f}× h5py fancy indexing")
        show("h5py fancy indexing (sorted)", fancy, "")
        rows.append(
            row(
                "pairs file: load_frames, random half",
                direct,
                "frames/s",
                baseline=fancy,
                baseline_label="raw h5py fancy indexing, sorted",
                notes="training reads, decoded",
            )
        )
        with read_pairs(base / "each.h5") as pairs:
            codec = pairs.codec
        start = time.perf_counter()
        for frame in frames:
            codec.encode(frame)
        encode = len(frames) / (time.perf_counter() - start)
        show(
            "frame check + uint16 encoding",
            encode,
            f"{1e3 / encode:.3f} ms of {1e3 / each:.2f} ms per commit",
        )
        rows.append(
            row(
                "pairs file: frame check + uint16 encoding",
                1e3 / encode,
                "ms/frame",
                baseline=1e3 / each,
                baseline_label="a whole per-frame commit",
                better="lower",
            )
        )
    return save({"rows": rows}, args.json)


def show(what: str, rate: float, ratio: str) -> None:
    print(f"{what:<32}: {rate:7.0f} frames/s  {ratio}")


if __name__ == "__main__":
    main()
