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
