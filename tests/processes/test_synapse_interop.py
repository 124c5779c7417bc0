"""Federation with Synapse: interop/synapse_federation.py's conversation and
interop/synapse_crosscheck.py's function-by-function comparison, run as
tests. They run when ATOMCHAT_SYNAPSE_PYTHON names the Python of a
virtualenv with Synapse installed (the script's docstring says how to make
one; .ci/run makes one and sets it), and is skipped otherwise: Synapse is
not a project dependency."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parents[2] / "interop"
SYNAPSE_PYTHON = os.environ.get("ATOMCHAT_SYNAPSE_PYTHON", "")

STEPS = [
    "Synapse room: Synapse user invites the AtomChat user; AtomChat sees the invite",
    "Synapse room: the AtomChat user joins (make_join/send_join)",
    "Synapse room: a message from Synapse reaches AtomChat",
    "Synapse room: a message from AtomChat reaches Synapse",
    "Synapse room: name and topic set on Synapse reach AtomChat",
    "Synapse room: redactions both ways",
    "AtomChat room: the AtomChat user invites the Synapse user; Synapse sees the invite",
    "AtomChat room: the Synapse user joins",
    "AtomChat room: messages both ways",
    "Backfill: an AtomChat user who joins a Synapse room late reads its earlier messages",
    "Backfill: a Synapse user who joins an AtomChat room late reads its earlier messages",
    "Outage: Synapse's messages sent while AtomChat was down reach it afterwards (get_missing_events)",
]


needs_synapse = pytest.mark.skipif(
    not SYNAPSE_PYTHON or not Path(SYNAPSE_PYTHON).exists(),
    reason="ATOMCHAT_SYNAPSE_PYTHON names no Synapse (see interop/synapse_federation.py)",
)


@needs_synapse
def test_the_conversation_with_synapse_passes_every_step():
    run = subprocess.run(
        [sys.executable, str(INTEROP / "synapse_federation.py"), "--synapse-python", SYNAPSE_PYTHON],
        capture_output=True,
        text=True,
        timeout=600,
    )
    passed = [line[len("PASS  ") :].split(" (")[0] for line in run.stdout.splitlines() if line.startswith("PASS  ")]
    assert passed == [step.split(" (")[0] for step in STEPS], run.stdout + run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(STEPS)} of {len(STEPS)} steps passed" in run.stdout


@needs_synapse
def test_event_ids_hashes_signatures_auth_and_state_resolution_agree_with_synapse():
    """Runs in Synapse's interpreter, which imports both servers' functions."""
    run = subprocess.run(
        [SYNAPSE_PYTHON, str(INTEROP / "synapse_crosscheck.py")], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for check in ("event id", "content hash", "event signature", "redaction", "state resolution", "auth (tables)"):
        assert any(line.startswith(f"{check} ") and " differ   0" in line for line in run.stdout.splitlines()), (
            run.stdout
        )
