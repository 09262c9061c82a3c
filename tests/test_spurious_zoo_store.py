"""ZooStore: restart-safe chunks (atomic writes, resume after a kill, identical bits whenever trained)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from cfdkit.spurious import CNNSpec, TrainSettings
from cfdkit.spurious.zoo_store import ZooStore

SPEC = CNNSpec(channels=(2, 4), hidden=(4,))
ST = TrainSettings(n_train=60, epochs=12, batch_size=20)


def _store(root, **kw):
    return ZooStore(root, SPEC, ST, **{"chunk_size": 8, **kw})


def test_chunks_fixed_and_balanced(tmp_path):
    s = _store(tmp_path)
    s2, seeds = s.chunk_members(2)
    assert np.array_equal(seeds, np.arange(16, 24))
    assert np.array_equal(np.unique(s2, return_counts=True)[1], [2, 2, 2, 2])


def test_refuses_other_recipe(tmp_path):
    _store(tmp_path)
    with pytest.raises(ValueError, match="seed_base"):
        _store(tmp_path, seed_base=5)
    with pytest.raises(ValueError, match="chunk_size"):
        ZooStore(tmp_path / "x", SPEC, ST, chunk_size=6)


def test_load_needs_ensure(tmp_path):
    with pytest.raises(ValueError, match="ensure"):
        _store(tmp_path).load(8)


_CHILD = textwrap.dedent("""
    import sys, time
    from cfdkit.spurious import CNNSpec, TrainSettings
    from cfdkit.spurious.zoo_store import ZooStore
    s = ZooStore(sys.argv[1], CNNSpec(channels=(2, 4), hidden=(4,)),
                 TrainSettings(n_train=60, epochs=12, batch_size=20), chunk_size=8)
    train = s.train_chunk

    def slow(k, *a, **kw):  # chunks after the first take long enough for the kill to land inside one
        out = train(k, *a, **kw)
        if k >= 1:
            time.sleep(30)
        return out

    s.train_chunk = slow
    s.ensure(40, progress=False)
""")


def test_survives_kill_mid_chunk_and_resumes_bit_identical(tmp_path):
    root = tmp_path / "store"
    p = subprocess.Popen([sys.executable, "-c", _CHILD, str(root)], start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (root / "chunk-00000.pt").exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        assert (root / "chunk-00000.pt").exists(), "the child never finished its first chunk"
        time.sleep(0.3)  # inside the next chunk's training
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=30)
    done_at_kill = sorted(x.name for x in root.glob("chunk-*.pt"))
    assert len(done_at_kill) < 5, "the child finished before it was killed; the test did not test a kill"
    # a killed writer can leave only a hidden temp file, never a partial chunk file
    s = _store(root)
    for f in done_at_kill:
        torch.load(root / f, weights_only=True)  # every chunk file on disk is complete
    mtimes = {f: os.stat(root / f).st_mtime_ns for f in done_at_kill}
    assert s.ensure(40, progress=False) == 40
    assert not list(root.glob(".zoo-*.tmp")), "stale temp files were not swept"
    for f in done_at_kill:  # finished chunks are not retrained
        assert os.stat(root / f).st_mtime_ns == mtimes[f]
    zoo = s.load(40)
    assert len(zoo) == 40 and np.array_equal(zoo.meta["seed"].numpy(), np.arange(40))
    # every chunk equals the same chunk trained afresh, bit for bit (before and after the kill)
    for k in (0, 2, 4):
        fresh = s.train_chunk(k)
        for name, v in fresh.params.items():
            assert torch.equal(v, zoo.params[name][8 * k:8 * (k + 1)]), (k, name)


def test_load_prefix(tmp_path):
    s = _store(tmp_path)
    s.ensure(12, progress=False)
    assert s.n_models == 16
    z = s.load(12)
    assert len(z) == 12 and np.array_equal(z.meta["seed"].numpy(), np.arange(12))


def test_time_budget_stops_between_chunks(tmp_path):
    s = _store(tmp_path)
    assert s.ensure(24, progress=False, time_budget_s=0.0) == 0  # no chunk starts once the budget is spent
    assert not list(tmp_path.glob("chunk-*.pt"))
