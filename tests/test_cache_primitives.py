"""Cache keys are stable and writes are atomic."""

import pytest

from helpers._cache import atomic_write, atomic_write_bytes, stable_hash


def test_stable_hash_ignores_key_order_and_distinguishes_values():
    assert stable_hash({"a": 1, "b": [1, 2.5]}) == stable_hash({"b": (1, 2.5), "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash({"lr": 1e-3}) != stable_hash({"lr": 1e-4})
    assert len(stable_hash("x", length=8)) == 8


def test_stable_hash_refuses_objects_it_cannot_hash_faithfully():
    with pytest.raises(TypeError, match="cannot hash"):
        stable_hash({"model": object()})


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "w.bin"
    atomic_write_bytes(target, b"good")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]


def test_entry_lock_makes_a_second_process_wait_and_read_what_the_first_wrote(tmp_path):
    import subprocess
    import sys
    import textwrap
    import time

    from helpers._cache import entry_lock

    entry = tmp_path / "entry.npz"
    holder = textwrap.dedent(f"""
        import pathlib, time
        from helpers._cache import entry_lock
        with entry_lock({str(entry)!r}):
            pathlib.Path({str(tmp_path / 'held')!r}).touch()
            time.sleep(1.5)
            pathlib.Path({str(entry)!r}).write_text("written by the first process")
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "held").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the first process never took the lock"
            time.sleep(0.05)
        with entry_lock(entry):  # blocks until the first process has written and released
            assert entry.read_text() == "written by the first process"
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
