"""Regression tests for issue 8, section 3 items 7 and 8 (features, datasets, neural).

Item 7: garbage in (inf, huge, empty, complex, non-finite synthetic parameters)
must give a correct answer or a clear error.  Item 8: corrupt upstream
archives, broken embedding caches, killed downloads and file modes.  Only a
local HTTP server on 127.0.0.1 is contacted.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cfdkit import data as cds
from cfdkit.data import features
from cfdkit.data import REGISTRY, DownloadError, Upstream, fetch_file, load, make_synthetic
from cfdkit.data import _atomic, _convert
from cfdkit.data.features import EMBEDDING_DIM, sentence_embeddings, tabular_features
from cfdkit.neural import NeuralCFD


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    monkeypatch.delenv("CFDKIT_DATA_MIRROR", raising=False)
    monkeypatch.delenv("CFDKIT_DATA_HOME", raising=False)
    cds.clear_checksum_cache()


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ============================================================== item 7: tabular_features
def _frames(col):
    tr = pd.DataFrame({"a": col, "b": [1.0, 2.0, 3.0, 4.0], "c": ["x", "y", "x", "y"]})
    te = pd.DataFrame({"a": col[:2], "b": [2.0, 9.0], "c": ["x", "z"]})
    return tr, te


@pytest.mark.parametrize("where", ["train", "test"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_tabular_inf_names_the_column(where, value):
    tr, te = _frames([1.0, 2.0, 3.0, 4.0])
    (tr if where == "train" else te).loc[1, "a"] = value
    with pytest.raises(ValueError, match=r"\['a'\].*" + where + ".*infinite"):
        tabular_features((tr, te, ["c"], ["a", "b"]))


@pytest.mark.parametrize("scale", [1e308, 1e-310, 1e200, 1.0])
def test_tabular_extreme_magnitudes_are_standardised_exactly(scale):
    base = np.array([1.0, -1.0, 0.5, 0.0])
    tr, te = _frames(list(base * scale))
    Xtr, Xte, names = tabular_features((tr, te, ["c"], ["a", "b"]))
    assert np.isfinite(Xtr).all() and np.isfinite(Xte).all()
    want = (base - base.mean()) / base.std()
    np.testing.assert_allclose(Xtr[:, 0], want, rtol=1e-12, atol=1e-12)  # not zeroed, not NaN
    np.testing.assert_allclose(Xte[:, 0], want[:2], rtol=1e-12, atol=1e-12)


def test_tabular_ordinary_data_give_the_same_bits_as_before():
    rng = np.random.default_rng(0)
    a = rng.normal(50, 10, size=30)
    tr = pd.DataFrame({"a": a, "c": ["x"] * 30})
    te = pd.DataFrame({"a": a[:5] + 1, "c": ["x"] * 5})
    Xtr, Xte, _ = tabular_features((tr, te, ["c"], ["a"]))
    np.testing.assert_array_equal(Xtr[:, 0], (a - a.mean()) / a.std())
    np.testing.assert_array_equal(Xte[:, 0], (a[:5] + 1 - a.mean()) / a.std())


def test_tabular_test_value_outside_float_range_is_refused():
    tr, te = _frames([1e-3, 2e-3, 3e-3, 4e-3])
    te.loc[0, "a"] = 1e308  # z-score about 9e310: not representable
    with pytest.raises(ValueError, match="overflow"):
        tabular_features((tr, te, ["c"], ["a", "b"]))


def test_tabular_empty_training_frame():
    tr, te = _frames([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="training DataFrame has no rows"):
        tabular_features((tr.iloc[:0], te, ["c"], ["a", "b"]))
    with pytest.raises(ValueError, match="no rows"):
        tabular_features((tr.iloc[:0], te, ["c"], []))


@pytest.mark.parametrize("where", ["train", "test"])
def test_tabular_complex_is_refused(where):
    tr, te = _frames([1.0, 2.0, 3.0, 4.0])
    df = tr if where == "train" else te
    df["a"] = df["a"] + 1j
    with pytest.raises(TypeError, match="'a'.*complex"):
        tabular_features((tr, te, ["c"], ["a", "b"]))
    df["a"] = df["a"].astype(object)
    with pytest.raises(TypeError, match="complex"):
        tabular_features((tr, te, ["c"], ["a", "b"]))


# ============================================================== item 7: synthetic data
@pytest.mark.parametrize(
    "kw, exc, word",
    [
        ({"class_sep": float("nan")}, ValueError, "class_sep"),
        ({"class_sep": float("inf")}, ValueError, "class_sep"),
        ({"class_sep": -float("inf")}, ValueError, "class_sep"),
        ({"class_sep": -1.0}, ValueError, "class_sep"),
        ({"class_sep": "3"}, TypeError, "class_sep"),
        ({"class_sep": 1e308, "sparse": True}, ValueError, "class_sep"),
        ({"class_sep": 2000.0, "sparse": True}, ValueError, "class_sep"),
        ({"noise": float("nan")}, ValueError, "noise"),
        ({"sparse": "no"}, TypeError, "sparse"),
        ({"sparse": None}, TypeError, "sparse"),
    ],
)
def test_synthetic_non_finite_parameters(kw, exc, word):
    with pytest.raises(exc, match=word):
        load("synthetic", n_train=20, n_test=5, **kw)


def test_synthetic_huge_but_finite_class_sep_is_finite():
    ds = make_synthetic(n_train=20, n_test=5, class_sep=1e300)
    assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_test).all()
    # default parameters are unchanged (same bits as the documented generator)
    a = make_synthetic(n_train=30, n_test=5, n_features=3, seed=4)
    rng = np.random.default_rng(4)
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    y = rng.integers(0, 2, size=30)
    X = rng.standard_normal((30, 3)) + np.outer(2 * y - 1, u) * 1.5
    np.testing.assert_array_equal(a.X_train, X)


# ============================================================== item 7: complex / sparse X in neural
def _toy(n=24, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] > 0).astype(int)


def test_neural_refuses_complex_and_sparse():
    X, y = _toy()
    cfd = NeuralCFD(hidden=(3, 3), budget=2, epochs=5, weight_decay=0.0, lr_min=None, tol=None, progress=False)
    with pytest.raises(TypeError, match="X_train holds complex"):
        cfd.fit(X + 1j, y)
    with pytest.raises(TypeError, match="X_train holds complex"):
        cfd.fit(X.astype(object) + 0.5j, y)
    with pytest.raises(TypeError, match="y_train holds complex"):
        cfd.fit(X, y + 1j)
    with pytest.raises(TypeError, match="sparse") as info:
        cfd.fit(sp.csr_matrix(X), y)
    assert "toarray" in str(info.value) and "categorical" not in str(info.value)
    cfd.fit(X, y)
    with pytest.raises(TypeError, match="X_test holds complex"):
        cfd.search(X[:2] + 0j * 0 + 1j)
    with pytest.raises(TypeError, match="X_test is a sparse"):
        cfd.search(sp.csr_matrix(X[:2]))


# ============================================================== item 8: a local upstream server
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _tiny_hate_archive() -> bytes:
    rows = [("1_1", "hello there", "noHate"), ("2_1", "some words", "hate"), ("3_1", "more text", "noHate")]
    buf = io.BytesIO()
    top = "hate-speech-dataset-abc"

    def add(tar, name, data):
        info = tarfile.TarInfo(f"{top}/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        meta = "file_id,user_id,subforum_id,num_contexts,label\n" + "".join(
            f"{f},1,2,0,{lab}\n" for f, _, lab in rows)
        add(tar, "annotations_metadata.csv", meta.encode())
        for f, text, _ in rows:
            add(tar, f"all_files/{f}.txt", text.encode())
    # pad to make truncation land inside the compressed stream
    return buf.getvalue()


HATE = "hate_speech_stormfront/hate_speech_stormfront.jsonl"


def _point_hate_at(monkeypatch, urls, good: bytes):
    out = _convert.hate_speech_jsonl(good)
    spec = dataclasses.replace(REGISTRY[HATE], sha256=hashlib.sha256(out).hexdigest(), size=len(out),
                               upstream=Upstream(tuple(urls), convert="hate_speech_jsonl"))
    monkeypatch.setitem(REGISTRY, HATE, spec)
    return out


@pytest.mark.parametrize("corruption", ["truncated", "garbage", "empty"])
def test_corrupt_upstream_archive_falls_through_to_next_source(server, tmp_path, monkeypatch, corruption):
    root, url = server
    good = _tiny_hate_archive()
    bad = {"truncated": good[: len(good) // 2], "garbage": b"not an archive at all" * 10, "empty": b""}[corruption]
    (root / "bad.tar.gz").write_bytes(bad)
    (root / "good.tar.gz").write_bytes(good)
    out = _point_hate_at(monkeypatch, [f"{url}/bad.tar.gz", f"{url}/good.tar.gz"], good)
    home = tmp_path / "home"
    got = fetch_file(HATE, home, progress=False)
    assert got.read_bytes() == out
    assert sorted(p.name for p in got.parent.iterdir()) == ["hate_speech_stormfront.jsonl"]


def test_all_upstream_archives_corrupt_is_a_clear_error(server, tmp_path, monkeypatch):
    root, url = server
    good = _tiny_hate_archive()
    (root / "cut.tar.gz").write_bytes(good[: len(good) - 40])  # EOFError inside gzip
    (root / "junk.tar.gz").write_bytes(b"\x00" * 600)  # tarfile.ReadError
    _point_hate_at(monkeypatch, [f"{url}/cut.tar.gz", f"{url}/junk.tar.gz"], good)
    home = tmp_path / "home"
    with pytest.raises(DownloadError) as info:
        fetch_file(HATE, home, progress=False)
    msg = str(info.value)
    assert "cut.tar.gz" in msg and "junk.tar.gz" in msg and "corrupt or truncated" in msg
    assert HATE in msg and "CFDKIT_DATA_HOME" in msg
    assert [p.name for p in home.rglob("*") if p.is_file()] == []  # no file, no temp file


def test_corrupt_zip_for_bank_converter(server, tmp_path, monkeypatch):
    root, url = server
    (root / "bank.zip").write_bytes(b"PK\x03\x04 broken zip")
    path = "fairness/bank/bank-full.csv"
    monkeypatch.setitem(REGISTRY, path, dataclasses.replace(
        REGISTRY[path], upstream=Upstream((f"{url}/bank.zip",), convert="bank_full_csv")))
    with pytest.raises(DownloadError, match="corrupt or truncated.*BadZipFile"):
        fetch_file(path, tmp_path, progress=False)


# ============================================================== item 8: temp files, modes, signals
GOOD = "sst2_binary/dev.jsonl"


def _serve_good(root: Path, monkeypatch, data: bytes = b'{"document": "x", "label": 1}\n'):
    (root / GOOD).parent.mkdir(parents=True, exist_ok=True)
    (root / GOOD).write_bytes(data)
    monkeypatch.setitem(REGISTRY, GOOD, dataclasses.replace(
        REGISTRY[GOOD], sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    return data


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_downloaded_files_respect_umask(server, tmp_path, monkeypatch, mask, mode):
    root, url = server
    _serve_good(root, monkeypatch)
    old = os.umask(mask)
    try:
        got = fetch_file(GOOD, tmp_path / "home", mirror=url, progress=False)
    finally:
        os.umask(old)
    assert got.stat().st_mode & 0o777 == mode


def test_stale_temp_files_are_swept_on_next_download(server, tmp_path, monkeypatch):
    root, url = server
    _serve_good(root, monkeypatch)
    folder = tmp_path / "home" / "sst2_binary"
    folder.mkdir(parents=True)
    stale = folder / ".dev.jsonl.k1llEd.part"      # left by a SIGKILLed download two days ago
    fresh = folder / ".dev.jsonl.running.part"     # another process downloading right now
    other = folder / "notes.part"                  # not one of ours
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    two_days = time.time() - 2 * 86400
    os.utime(stale, (two_days, two_days))
    os.utime(other, (two_days, two_days))
    fetch_file(GOOD, tmp_path / "home", mirror=url, progress=False)
    assert not stale.exists() and fresh.exists() and other.exists()
    assert (folder / "dev.jsonl").is_file()
    # the sweep helper on its own
    os.utime(fresh, (two_days, two_days))
    assert _atomic.sweep_stale(folder, "dev.jsonl") == [fresh]


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10**6))
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"x" * 1000)
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_download_removes_the_temp_file(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    home = tmp_path / "home"
    code = textwrap.dedent(f"""
        from cfdkit.data import fetch_file
        fetch_file({GOOD!r}, {str(home)!r}, mirror="http://127.0.0.1:{srv.server_address[1]}", progress=False)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        folder = home / "sst2_binary"
        deadline = time.time() + 60
        while time.time() < deadline and not list(folder.glob(".dev.jsonl.*.part")):
            time.sleep(0.05)
        parts = list(folder.glob(".dev.jsonl.*.part"))
        assert parts, "the download never started"
        assert parts[0].stat().st_mode & 0o777 == 0o666 & ~_atomic._umask()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.shutdown()
        srv.server_close()
    assert rc == -signal.SIGTERM  # still dies of the signal
    assert not list(folder.glob("*.part")) and not (folder / "dev.jsonl").exists()


# ============================================================== item 8: embedding cache
class _FakeModel:
    def __init__(self):
        self.calls = 0

    def encode(self, texts, **kw):
        self.calls += 1
        rng = np.random.default_rng(len(texts))
        E = rng.normal(size=(len(texts), EMBEDDING_DIM)).astype(np.float32)
        return E / np.linalg.norm(E, axis=1, keepdims=True)


@pytest.fixture
def fake_model(monkeypatch):
    m = _FakeModel()
    monkeypatch.setattr(features, "_load_model", lambda device: m)
    return m


TEXTS = ["one text", "another text", "third"]


def _cache_file(tmp_path) -> Path:
    files = list((tmp_path / "all-MiniLM-L6-v2").glob("*.npy"))
    assert len(files) == 1
    return files[0]


@pytest.mark.parametrize("damage", ["empty", "truncated", "nan", "inf", "wrong_shape", "not_npy", "object"])
def test_broken_cache_file_is_recomputed_and_rewritten(tmp_path, fake_model, damage):
    first = sentence_embeddings(TEXTS, cache_dir=tmp_path)
    f = _cache_file(tmp_path)
    raw = f.read_bytes()
    if damage == "empty":
        f.write_bytes(b"")
    elif damage == "truncated":
        f.write_bytes(raw[: len(raw) // 2])
    elif damage == "not_npy":
        f.write_bytes(b"hello")
    else:
        bad = {"nan": np.full((3, EMBEDDING_DIM), np.nan), "inf": np.full((3, EMBEDDING_DIM), np.inf),
               "wrong_shape": np.zeros((2, EMBEDDING_DIM)), "object": None}[damage]
        if damage == "object":
            np.save(f, np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
        else:
            np.save(f, bad)
    again = sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert fake_model.calls == 2  # recomputed
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(np.load(f), first)  # and rewritten
    sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert fake_model.calls == 2  # now a cache hit


def test_unwritable_cache_still_returns_embeddings(tmp_path, fake_model):
    (tmp_path / "all-MiniLM-L6-v2").write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="could not write the cache"):
        emb = sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert emb.shape == (3, EMBEDDING_DIM) and np.isfinite(emb).all()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_cache_folder_still_returns_embeddings(tmp_path, fake_model):
    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.warns(RuntimeWarning, match="could not write the cache"):
            emb = sentence_embeddings(TEXTS, cache_dir=tmp_path)
    finally:
        folder.chmod(0o755)
    assert emb.shape == (3, EMBEDDING_DIM)


def test_read_only_cache_via_failing_write(tmp_path, fake_model, monkeypatch):
    """Works as root too: the write itself fails with a read-only file system error."""
    def ro(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(features, "_save_atomic", ro)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        emb = sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert any("Read-only" in str(w.message) for w in rec)
    assert emb.shape == (3, EMBEDDING_DIM) and fake_model.calls == 1


def test_cache_file_mode_respects_umask(tmp_path, fake_model, umask022):
    sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert _cache_file(tmp_path).stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.rglob("*.part"))


def test_model_returning_nan_is_not_cached(tmp_path, monkeypatch):
    class Bad:
        def encode(self, texts, **kw):
            return np.full((len(texts), EMBEDDING_DIM), np.nan)

    monkeypatch.setattr(features, "_load_model", lambda device: Bad())
    with pytest.raises(RuntimeError, match="non-finite"):
        sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.npy"))
