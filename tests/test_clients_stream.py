"""Stream clients against a fake daemon: watch --json and record, gaps, and a daemon restart survived."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from clients_helpers import DEADLINE_S, ClientProcess, wait_for
from fake_daemon import FakeDaemon, recon_image, speckle_image

from specklenet.clients.stream import GAP, RESTART, SequenceTracker
from specklenet.clients.stream_file import load_stream

OLD_RUN, NEW_RUN = 7, 1234  # stream ids of two daemon runs


def test_tracker_counts_gaps_and_a_restart_once_across_topics() -> None:
    tracker = SequenceTracker()
    assert tracker.observe("recon", 10, OLD_RUN) is None  # joining mid-stream is not a gap
    assert tracker.observe("status", 3, OLD_RUN) is None
    assert tracker.observe("recon", 11, OLD_RUN) is None
    gap = tracker.observe("recon", 15, OLD_RUN)
    assert (gap.kind, gap.after_seq, gap.next_seq, gap.lost, gap.session) == (GAP, 11, 15, 3, 0)
    gap = tracker.observe("recon", 17, OLD_RUN)  # one message missing
    assert (gap.after_seq, gap.next_seq, gap.lost) == (15, 17, 1)
    assert tracker.observe("recon", 18, OLD_RUN) is None
    restart = tracker.observe("recon", 2, NEW_RUN)  # a new daemon run, its first 2 messages missed
    assert (restart.kind, restart.lost, restart.session) == (RESTART, 2, 1)
    status = tracker.observe("status", 5, NEW_RUN)  # each topic's first message of the new run
    assert (status.kind, status.lost, status.session) == (RESTART, 5, 1)
    assert tracker.restarts == 1 and tracker.session == 1
    assert tracker.observe("status", 6, NEW_RUN) is None
    assert tracker.lost == {"recon": 6, "status": 5}


@pytest.mark.parametrize("first_new_seq", [18, 19, 40])
def test_a_restart_is_seen_when_the_new_run_passed_the_old_runs_seq(first_new_seq: int) -> None:
    """A short old run, a subscriber that rejoins late: the new run's first seq seen is at or past the
    old run's last + 1 (caught on CI, where seq alone showed no gap, or a gap, and no restart)."""
    tracker = SequenceTracker()
    for seq in range(18):
        tracker.observe("recon", seq, OLD_RUN)
    restart = tracker.observe("recon", first_new_seq, NEW_RUN)
    assert restart is not None
    assert (restart.kind, restart.after_seq, restart.lost, restart.session) == (RESTART, 17, first_new_seq, 1)
    assert tracker.observe("recon", first_new_seq + 1, NEW_RUN) is None
    assert tracker.restarts == 1 and tracker.lost["recon"] == first_new_seq


def recon_lines(client: ClientProcess, count: int, *, session: int | None = None) -> list[dict]:
    lines: list[dict] = []

    def enough(line: dict) -> bool:
        if line["event"] == "recon" and (session is None or line["session"] == session):
            lines.append(line)
        return len(lines) >= count

    other = client.json_lines(enough, f"{count} reconstructions")
    return [*other]


def test_watch_json_reports_every_reconstruction_and_gaps() -> None:
    with FakeDaemon(rate_hz=200, speckle=False) as fake:
        client = ClientProcess("watch", "--json", "--stream", fake.stream)
        lines = recon_lines(client, 20)
        fake.skip_next = 5
        lines += recon_lines(client, 40)
        status, err = client.stop()
    assert status == 0, err
    recons = [line for line in lines if line["event"] == "recon"]
    seqs = [line["seq"] for line in recons]
    gaps = [line for line in lines if line["event"] == "gap"]
    assert [(g["next_seq"] - g["after_seq"], g["lost"]) for g in gaps] == [(6, 5)]
    steps = np.diff(seqs)
    assert sorted(steps)[-1] == 6 and np.all(sorted(steps)[:-1] == np.ones(len(steps) - 1))
    line = recons[-1]
    assert line["model"] == "fake.onnx" and line["target_index"] == line["frame_id"] % 8
    assert 0.0 <= line["latency_ms"] < 60_000 and isinstance(line["pcc"], float)


def test_watch_json_piped_into_head_ends_quietly() -> None:
    """``specklenet watch --json | head -1``: the reader closes the pipe; watch ends with the status of a
    filter killed by SIGPIPE (141) and no traceback, as a new user piping it expects."""
    with FakeDaemon(rate_hz=200, speckle=False) as fake:
        process = subprocess.Popen(
            [sys.executable, "-m", "specklenet.clients.cli", "watch", "--json", "--stream", fake.stream],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # what head -1 reads ...
        process.stdout.close()  # ... before it exits
        status = process.wait(timeout=DEADLINE_S)
        err = process.stderr.read().decode()
        process.stderr.close()
    assert first.startswith(b"{")
    assert status == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_watch_survives_a_daemon_restart_and_reports_it() -> None:
    fake = FakeDaemon(rate_hz=200, speckle=False).start()
    client = ClientProcess("watch", "--json", "--stream", fake.stream)
    try:
        recon_lines(client, 20)
        fake.stop()
        fake = FakeDaemon(control=fake.control, stream=fake.stream, rate_hz=200, speckle=False).start()
        after = recon_lines(client, 20, session=1)
    finally:
        fake.stop()
        status, err = client.stop()
    assert status == 0, err
    events = [line["event"] for line in after]
    assert "disconnected" in events and "restart" in events
    restart = next(line for line in after if line["event"] == "restart")
    assert restart["session"] == 1 and restart["lost"] == restart["next_seq"]


def test_record_keeps_every_message_and_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "stream.h5"
    fake = FakeDaemon(rate_hz=200).start()
    client = ClientProcess(
        "record", "-o", str(path), "--speckle", "--flush-interval", "0.05", "--stream", fake.stream
    )

    def rows(session: int) -> bool:
        if not path.exists():
            return False
        try:
            recon = load_stream(path, "recon")
        except (OSError, KeyError):
            return False  # the file is being created
        return int(np.sum(recon["session"] == session)) >= 40

    try:
        wait_for(lambda: rows(0), "40 recorded reconstructions")
        fake.skip_next = 4
        wait_for(lambda: rows(0) and load_stream(path, "gaps")["lost"].sum() == 8, "recorded gaps")
        fake.stop()
        fake = FakeDaemon(control=fake.control, stream=fake.stream, rate_hz=200).start()
        wait_for(lambda: rows(1), "40 reconstructions after the restart")
    finally:
        fake.stop()
        status, err = client.stop(signal.SIGTERM)
    assert status == 0, err
    assert "daemon restarted" in err and "1 daemon restarts" in err

    recon, speckle, gaps = (load_stream(path, name) for name in ("recon", "speckle", "gaps"))
    assert set(recon["session"]) == {0, 1}
    for row, frame_id in enumerate(recon["frame_id"]):
        np.testing.assert_array_equal(recon["image"][row], recon_image(int(frame_id)))
        assert recon["headers"][row]["frame_id"] == frame_id
    for row, frame_id in enumerate(speckle["frame_id"][:5]):
        np.testing.assert_array_equal(speckle["image"][row], speckle_image(int(frame_id)))
    # Every seq of each session is in the file or accounted for by a gap row.
    kinds = {
        (int(t), int(k), int(a), int(n), int(lost))
        for t, k, a, n, lost in zip(
            gaps["topic"], gaps["kind"], gaps["after_seq"], gaps["next_seq"], gaps["lost"], strict=True
        )
    }
    assert [(a, n, lost) for t, k, a, n, lost in kinds if t == 0 and k == 0] == [
        (a, a + 5, 4) for t, k, a, n, lost in kinds if t == 0 and k == 0
    ]  # the skipped recon messages
    assert sum(lost for t, k, a, n, lost in kinds if k == 0) == 8  # 4 recon + 4 speckle
    assert any(k == 1 for _, k, *_ in kinds)  # the restart
    for session in (0, 1):
        seqs = recon["seq"][recon["session"] == session]
        lost_inside = sum(
            lost for t, k, a, n, lost in kinds if t == 0 and k == 0 and seqs[0] <= a and n <= seqs[-1]
        )
        assert len(seqs) + lost_inside == seqs[-1] - seqs[0] + 1
    summary = recon["attrs"]["summary"]
    assert '"restarts": 1' in summary


def test_record_refuses_to_overwrite(tmp_path, capsys) -> None:
    from specklenet.clients import cli

    path = tmp_path / "stream.h5"
    path.write_bytes(b"precious")
    assert cli.main(["record", "-o", str(path), "--stream", "tcp://127.0.0.1:1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize("sig", [signal.SIGKILL])
def test_record_killed_keeps_what_it_committed(tmp_path, sig) -> None:
    path = tmp_path / "stream.h5"
    with FakeDaemon(rate_hz=200, speckle=False) as fake:
        client = ClientProcess("record", "-o", str(path), "--flush-interval", "0.05", "--stream", fake.stream)

        def committed() -> int:
            try:
                return len(load_stream(path, "recon")["seq"]) >= 30
            except (OSError, KeyError):
                return False

        wait_for(committed, "30 committed reconstructions")
        client.stop(sig)
    recon = load_stream(path, "recon")
    assert len(recon["seq"]) >= 30
    for row, frame_id in enumerate(recon["frame_id"]):
        np.testing.assert_array_equal(recon["image"][row], recon_image(int(frame_id)))


def test_watch_terminal_view_shows_the_figures() -> None:
    with FakeDaemon(rate_hz=200, speckle=False, status_every=5) as fake:
        client = ClientProcess("watch", "--count", "30", "--stream", fake.stream)
        client.process.wait(timeout=60)
        status, err = client.stop()
        out = "".join(client.lines.queue)  # stop() joined the reader: every line is there
    assert status == 0, err
    for text in (
        "reconstructions",
        "latency ms",
        "p95",
        "PCC last / running",
        "daemon lost",
        "daemon skipped",
        "fake.onnx",
    ):
        assert text in out, (text, out)
    assert out.endswith("\n"), out[-200:]  # the shell's prompt starts on a line of its own


def test_daemon_counters_keep_numbers_and_totals() -> None:
    from specklenet.clients.watch import daemon_counters

    status = {"counters": {"frames": 9, "lost": 1, "rejected": {"late": 2, "count": 3}, "control": {"x": {}}}}
    assert daemon_counters(status) == {"frames": 9, "lost": 1, "rejected": 5}
