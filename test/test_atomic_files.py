"""atomic_write, the one way LightLip writes a file for later: never half written, torn leftovers cleaned."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lightlip_ros.atomic_files import atomic_write, atomic_write_json, atomic_write_text, remove_torn_temporaries


def test_a_process_killed_while_writing_leaves_the_previous_file_and_the_next_write_cleans_up(tmp_path):
    path = tmp_path / "out" / "model.onnx"
    atomic_write_text(path, "previous")
    script = textwrap.dedent(f"""
        import os, signal
        from lightlip_ros.atomic_files import atomic_write
        with atomic_write({str(path)!r}) as temporary:
            temporary.write_bytes(b"half" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    torn = [p for p in path.parent.iterdir() if p != path]
    assert len(torn) == 1 and torn[0].name.startswith(".model.onnx.") and torn[0].name.endswith(".tmp.onnx")
    assert path.read_text() == "previous"

    atomic_write_text(path, "next")
    assert path.read_text() == "next"
    assert sorted(path.parent.iterdir()) == [path]


def test_an_error_while_writing_keeps_the_previous_file_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "report.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_write(path) as temporary:
            temporary.write_text("{")
            raise RuntimeError("writer failed")
    assert path.read_text() == '{\n "a": 1\n}\n'
    assert sorted(tmp_path.iterdir()) == [path]


def test_the_temporary_keeps_the_suffix_so_writers_that_append_one_do_not(tmp_path):
    path = tmp_path / "mel.npy"
    with atomic_write(path) as temporary:
        np.save(temporary, np.arange(3))  # numpy appends ".npy" to a name without it
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_live_writers_temporary_is_not_torn(tmp_path):
    path = tmp_path / "last.pt"
    with atomic_write(path) as temporary:
        temporary.write_bytes(b"in progress")
        assert remove_torn_temporaries(path) == []  # this process is alive: its write goes on
        assert temporary.exists()
    dead = tmp_path / f".last.pt.{2 ** 22 + 1}.0000.tmp.pt"  # above Linux's pid_max: no such process
    dead.write_bytes(b"torn")
    other = tmp_path / ".last.pt.notes"
    other.write_text("not a temporary")
    assert remove_torn_temporaries(path) == [dead]
    assert other.exists() and path.read_bytes() == b"in progress"
    assert os.path.exists(path)
