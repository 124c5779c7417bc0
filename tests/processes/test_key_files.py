"""Secret key files made on first start: processes starting together
(``serve --workers``) must agree on one whole key, never read a half-written
file, and leave the file readable by the server's user only."""

from __future__ import annotations

import multiprocessing
import stat

from atomchat_server.auth.key_files import read_or_create

PROCESSES = 6
ROUNDS = 15


def _race(data_dir, barrier, results, index):
    barrier.wait()
    results.put(read_or_create(data_dir, "secret.key", lambda: f"key of process {index}\n" * 50))


def test_processes_starting_together_all_read_the_same_whole_key(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"round{round_}"
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        processes = [
            context.Process(target=_race, args=(data_dir, barrier, results, index)) for index in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        texts = [results.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
            assert process.exitcode == 0
        winner = (data_dir / "secret.key").read_text()
        assert texts == [winner] * PROCESSES
        assert len(winner.splitlines()) == 50 and len(set(winner.splitlines())) == 1
        # No temporary file is left behind, and the key is private.
        assert [path.name for path in data_dir.iterdir()] == ["secret.key"]
        assert stat.S_IMODE((data_dir / "secret.key").stat().st_mode) == 0o600


def test_an_existing_key_is_read_and_never_replaced(tmp_path):
    (tmp_path / "secret.key").write_text("kept\n")
    assert read_or_create(tmp_path, "secret.key", lambda: "new\n") == "kept\n"
    assert (tmp_path / "secret.key").read_text() == "kept\n"
