"""Tests for cfdkit.data: data home, verified downloads, loaders.

Downloads are exercised against a real local HTTP server on 127.0.0.1 that
serves a temporary mirror built from copies of the project's shared data;
nothing else is contacted.  Tests that need the shared data skip cleanly
when it is absent.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cfdkit import data as cds
from cfdkit.data import (
    REGISTRY,
    ChecksumError,
    Dataset,
    DownloadError,
    data_home,
    fetch_file,
    flip_labels,
    list_datasets,
    load,
    load_fairness,
    load_hate_speech,
    load_loan,
    load_sst2,
    make_synthetic,
)
from cfdkit.data import _convert


def _shared_data() -> Path | None:
    env = os.environ.get("CFDKIT_DATA_HOME")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    for c in candidates:
        if (c / "sst2_binary" / "dev.jsonl").is_file():
            return c
    return None


SHARED = _shared_data()
needs_data = pytest.mark.skipif(SHARED is None, reason="shared data folder not available")

GOOD = "sst2_binary/dev.jsonl"
GOOD2 = "fairness/salary/salary.csv"
CORRUPT = "fairness/german/german.data"
MISSING = "fairness/student/student-mat.csv"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No test may see the user's env settings or reach a real mirror."""
    monkeypatch.delenv("CFDKIT_DATA_MIRROR", raising=False)
    monkeypatch.delenv("CFDKIT_DATA_HOME", raising=False)
    cds.clear_checksum_cache()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def mirror():
    """A local HTTP mirror: GOOD files verbatim, CORRUPT altered, MISSING absent."""
    if SHARED is None:
        pytest.skip("shared data folder not available")
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="cfdkit-mirror-"))
    for rel in (GOOD, GOOD2, "sst2_binary/train.jsonl", "fairness/salary/salary_numeric_codes.raw"):
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / rel, dst)
    bad = bytearray((SHARED / CORRUPT).read_bytes())
    bad[100:110] = b"XXXXXXXXXX"  # same size, altered bytes
    (root / CORRUPT).parent.mkdir(parents=True, exist_ok=True)
    (root / CORRUPT).write_bytes(bytes(bad))

    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------- data home
def test_data_home_precedence(tmp_path, monkeypatch):
    assert data_home(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("CFDKIT_DATA_HOME", str(tmp_path / "env"))
    assert data_home() == (tmp_path / "env").resolve()
    assert data_home(tmp_path / "arg") == (tmp_path / "arg").resolve()
    monkeypatch.delenv("CFDKIT_DATA_HOME")
    import platformdirs

    assert data_home() == Path(platformdirs.user_cache_dir("cfdkit")).resolve()


def test_data_home_bad_type():
    with pytest.raises(TypeError, match="data_home"):
        data_home(3)
    with pytest.raises(ValueError, match="data_home"):
        data_home("  ")


# ---------------------------------------------------------------------- registry
def test_registry_entries_are_well_formed():
    for path, spec in REGISTRY.items():
        assert path == spec.path and "\\" not in path
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
        assert spec.size > 0
        if spec.upstream is not None:
            assert spec.upstream.urls
            assert all(u.startswith("https://") for u in spec.upstream.urls)
            assert spec.upstream.convert in (None, *_convert.CONVERTERS)


@needs_data
def test_registry_matches_shared_data():
    for path, spec in REGISTRY.items():
        f = SHARED / path
        assert f.is_file(), path
        assert f.stat().st_size == spec.size, path
        assert hashlib.sha256(f.read_bytes()).hexdigest() == spec.sha256, path


def test_unknown_file_is_a_clear_error(tmp_path):
    with pytest.raises(KeyError, match="not a registered"):
        fetch_file("nope/nothing.csv", tmp_path)


# --------------------------------------------------------------------- downloads
@needs_data
def test_download_good_file(mirror, tmp_path):
    home = tmp_path / "home"
    got = fetch_file(GOOD, home, mirror=mirror, progress=False)
    assert got == home / "sst2_binary" / "dev.jsonl"
    assert got.read_bytes() == (SHARED / GOOD).read_bytes()
    assert _leftovers(home) == ["dev.jsonl"]  # no temp files left
    # second call: found locally, no download (server not needed)
    assert fetch_file(GOOD, home, mirror="http://127.0.0.1:9") == got


@needs_data
def test_download_via_env_mirror_and_load(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("CFDKIT_DATA_MIRROR", mirror)
    monkeypatch.setenv("CFDKIT_DATA_HOME", str(tmp_path))
    ds = load_sst2()
    assert (ds.n_train, ds.n_test) == (6920, 872)
    sal = load_fairness("salary")
    assert sal.n_train + sal.n_test == 52
    assert (tmp_path / GOOD2).is_file()


@needs_data
def test_download_corrupted_file_leaves_nothing(mirror, tmp_path):
    home = tmp_path / "home"
    with pytest.raises(ChecksumError) as info:
        fetch_file(CORRUPT, home, mirror=mirror, progress=False)
    msg = str(info.value)
    assert CORRUPT in msg and REGISTRY[CORRUPT].sha256 in msg and info.value.actual in msg
    assert not (home / CORRUPT).exists()
    assert _leftovers(home) == []  # neither the file nor a temp file


@needs_data
def test_download_missing_file_404(mirror, tmp_path):
    home = tmp_path / "home"
    with pytest.raises(DownloadError) as info:
        fetch_file(MISSING, home, mirror=mirror, progress=False)
    msg = str(info.value)
    assert info.value.status == 404
    assert MISSING in msg and "404" in msg and "CFDKIT_DATA_HOME" in msg
    assert str(home) in msg
    assert _leftovers(home) == []


def test_no_network_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        fetch_file(GOOD, tmp_path, mirror=f"http://127.0.0.1:{port}", progress=False)
    msg = str(info.value)
    assert GOOD in msg and "connect to the internet" in msg and "CFDKIT_DATA_HOME" in msg
    assert _leftovers(tmp_path) == []


def test_file_without_upstream_needs_data_home(tmp_path):
    with pytest.raises(DownloadError, match="no public upstream source"):
        fetch_file("sst2_binary/ATTRIBUTION.md", tmp_path)


def test_bad_mirror_argument(tmp_path):
    with pytest.raises(ValueError, match="mirror"):
        fetch_file(GOOD, tmp_path, mirror="ftp://example")


@needs_data
def test_corrupt_local_file_is_caught_even_after_cached_check(mirror, tmp_path):
    home = tmp_path / "home"
    (home / "fairness" / "salary").mkdir(parents=True)
    target = home / GOOD2
    shutil.copyfile(SHARED / GOOD2, target)
    assert load_fairness("salary", home).n_test == 11  # checksum now cached
    data = target.read_bytes()
    target.write_bytes(data[:-5])  # truncate
    with pytest.raises(ChecksumError) as info:
        load_fairness("salary", home)
    msg = str(info.value)
    assert str(target) in msg and "force=True" in msg and REGISTRY[GOOD2].sha256 in msg
    # same size, different bytes, timestamps put back: still caught (ctime changes)
    st = os.stat(SHARED / GOOD2)
    target.write_bytes(data.replace(b"36350", b"36351", 1))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ChecksumError):
        fetch_file(GOOD2, home)
    # force=True re-downloads and repairs
    fetch_file(GOOD2, home, mirror=mirror, force=True, progress=False)
    assert target.read_bytes() == data


@needs_data
def test_upstream_path_with_converter(mirror, tmp_path, monkeypatch):
    """The no-mirror path: download the upstream bytes, convert, verify, store.

    The registry entry is pointed at the local server, so no real upstream is
    contacted.
    """
    import dataclasses

    from cfdkit.data import Upstream

    raw_url = f"{mirror}/fairness/salary/salary_numeric_codes.raw"
    spec = REGISTRY[GOOD2]
    monkeypatch.setitem(REGISTRY, GOOD2, dataclasses.replace(
        spec, upstream=dataclasses.replace(spec.upstream, urls=(raw_url,))))
    home = tmp_path / "home"
    got = fetch_file(GOOD2, home, progress=False)
    assert got.read_bytes() == (SHARED / GOOD2).read_bytes()
    assert _leftovers(home) == ["salary.csv"]
    # upstream bytes that do not match the pinned upstream sha256: nothing saved
    monkeypatch.setitem(REGISTRY, GOOD2, dataclasses.replace(
        spec, upstream=Upstream((f"{mirror}/{GOOD}",), sha256=spec.upstream.sha256, convert="salary_csv")))
    home2 = tmp_path / "home2"
    with pytest.raises(ChecksumError, match="Upstream bytes"):
        fetch_file(GOOD2, home2, progress=False)
    assert _leftovers(home2) == []
    # first URL failing (404) falls through to the next one
    monkeypatch.setitem(REGISTRY, GOOD2, dataclasses.replace(
        spec, upstream=dataclasses.replace(spec.upstream, urls=(f"{mirror}/nope.raw", raw_url))))
    assert fetch_file(GOOD2, tmp_path / "home3", progress=False).is_file()


# -------------------------------------------------------------------- converters
@needs_data
def test_simple_converters_rebuild_exact_files(tmp_path):
    d = SHARED / "fairness"
    sal = _convert.salary_csv((d / "salary/salary_numeric_codes.raw").read_bytes())
    assert hashlib.sha256(sal).hexdigest() == REGISTRY[GOOD2].sha256
    ger = _convert.german_csv((d / "german/german.data").read_bytes())
    assert hashlib.sha256(ger).hexdigest() == REGISTRY["fairness/german/german.csv"].sha256
    assert _convert.cr_to_lf(b"a,b\rc,d\r\n") == b"a,b\nc,d\n"
    # bank: nested zips as in UCI's bank+marketing.zip
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.write(d / "bank/bank-names.txt", "bank-names.txt")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("bank.zip", inner.getvalue())
    names = _convert.bank_names_txt(outer.getvalue())
    assert hashlib.sha256(names).hexdigest() == REGISTRY["fairness/bank/bank-names.txt"].sha256


@needs_data
def test_hate_speech_converter_from_repository_layout():
    """Rebuild the jsonl from a tarball laid out like Vicomtech/hate-speech-dataset.

    The tarball is reconstructed from the jsonl itself (there is no network
    here), so this checks the converter's logic and serialisation, not the
    upstream repository's content.
    """
    rows = [json.loads(l) for l in (SHARED / REGISTRY_HATE).read_text("utf-8").splitlines()]
    buf = io.BytesIO()
    top = "hate-speech-dataset-b802137e8314c38a8d4faa965f9908d6c8e7a84d"

    def add(tar, name, data: bytes):
        info = tarfile.TarInfo(f"{top}/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        meta = "file_id,user_id,subforum_id,num_contexts,label\n" + "".join(
            f"{r['file_id']},{r['user_id']},{r['subforum_id']},{r['num_contexts']},{r['label']}\n"
            for r in rows
        )
        add(tar, "annotations_metadata.csv", meta.encode())
        for r in rows:
            text = r["text"].encode("utf-8")
            add(tar, f"all_files/{r['file_id']}.txt", text)
            if r["in_sampled_train"]:
                add(tar, f"sampled_train/{r['file_id']}.txt", text)
            if r["in_sampled_test"]:
                add(tar, f"sampled_test/{r['file_id']}.txt", text)
    out = _convert.hate_speech_jsonl(buf.getvalue())
    assert hashlib.sha256(out).hexdigest() == REGISTRY[REGISTRY_HATE].sha256


REGISTRY_HATE = "hate_speech_stormfront/hate_speech_stormfront.jsonl"


# ----------------------------------------------------------------------- loaders
def _check_dataset(ds: Dataset):
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    assert len(ds.X_train) == ds.n_train and len(ds.X_test) == ds.n_test
    if isinstance(ds.X_train, pd.DataFrame):
        assert list(ds.X_train.columns) == ds.feature_names
        assert sorted(ds.categorical + ds.numeric) == sorted(ds.feature_names)
        for tr_mask, te_mask in ds.groups.values():
            assert tr_mask.shape == (ds.n_train,) and te_mask.shape == (ds.n_test,)


@needs_data
def test_hate_speech_paper_split():
    ds = load_hate_speech(SHARED)
    _check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (9632, 1071)
    assert (int(ds.y_train.sum()), int(ds.y_test.sum())) == (1078, 118)
    assert isinstance(ds.X_train[0], str)
    # membership agrees with the file's own paper_split column
    rows = [json.loads(l) for l in (SHARED / REGISTRY_HATE).read_text("utf-8").splitlines()]
    split = {r["file_id"]: r["paper_split"] for r in rows}
    assert {split[f] for f in ds.meta["file_id_train"]} == {"train"}
    assert {split[f] for f in ds.meta["file_id_test"]} == {"test"}


@needs_data
def test_sst2_test_is_dev():
    ds = load_sst2(SHARED)
    _check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (6920, 872)
    assert (int(ds.y_train.sum()), int(ds.y_test.sum())) == (3610, 444)
    assert len(ds.meta["X_heldout"]) == 1821


@needs_data
def test_loan_partial_balanced_split():
    ds = load_loan(SHARED)
    _check_dataset(ds)
    assert ds.n_train + ds.n_test == 20000
    assert ds.n_test == int(np.ceil(20000 * 2800 / 23920))
    assert abs(ds.y_train.mean() - 0.5) < 1e-3 and abs(ds.y_test.mean() - 0.5) < 1e-3
    assert "13,568" in ds.notes and "PARTIAL" in ds.notes
    assert "Risk_Flag" not in ds.X_train.columns
    assert load_loan(SHARED, seed=1).meta["test_index"].tolist() != ds.meta["test_index"].tolist()
    with pytest.raises(ValueError, match="test_size"):
        load_loan(SHARED, test_size=1.5)


@needs_data
@pytest.mark.parametrize(
    "name, kw, n_rows, n_pos",
    [
        ("salary", {}, 52, 19),
        ("student", {}, 649, 549),
        ("student", {"subject": "mat"}, 395, 265),
        ("german", {}, 1000, 700),
        ("compas", {}, 6172, 2809),
        ("default", {}, 30000, 6636),
        ("bank", {}, 45211, 5289),
        ("adult", {}, 45222, 7508 + 3700),
        ("adult", {"dropna": False}, 48842, 7841 + 3846),
    ],
)
def test_fairness_counts(name, kw, n_rows, n_pos):
    ds = load_fairness(name, SHARED, **kw)
    _check_dataset(ds)
    assert ds.n_train + ds.n_test == n_rows
    assert int(ds.y_train.sum() + ds.y_test.sum()) == n_pos
    assert ds.meta["sensitive"] and set(ds.meta["sensitive"]) <= set(ds.feature_names)
    assert ds.meta["positive_class"]
    if name != "adult":
        assert ds.n_test == int(np.ceil(0.2 * n_rows))
        # stratified: same positive share up to rounding
        assert abs(ds.y_train.mean() - ds.y_test.mean()) < 0.05


@needs_data
def test_adult_official_split():
    ds = load_fairness("adult", SHARED)
    assert (ds.n_train, ds.n_test) == (30162, 15060)
    assert ds.X_train.isna().sum().sum() == 0
    raw = load_fairness("adult", SHARED, dropna=False)
    assert (raw.n_train, raw.n_test) == (32561, 16281)


@needs_data
def test_student_keep_grades_and_bad_subject():
    assert "G1" not in load_fairness("student", SHARED).feature_names
    assert "G1" in load_fairness("student", SHARED, keep_grades=True).feature_names
    with pytest.raises(ValueError, match="subject"):
        load_fairness("student", SHARED, subject="bio")


def test_fairness_bad_arguments():
    with pytest.raises(ValueError, match="salary"):
        load_fairness("iris")
    with pytest.raises(ValueError, match="test_size"):
        load_fairness("german", test_size=0)
    with pytest.raises(TypeError, match="test_size"):
        load_fairness("german", test_size="0.2")
    with pytest.raises(ValueError, match="seed"):
        load_fairness("german", seed=-1)


# -------------------------------------------------------------------- dispatcher
def test_list_and_load_dispatch():
    names = list_datasets()
    for n in ["hate-speech", "sst2", "loan", "synthetic", "salary", "student",
              "german", "compas", "default", "bank", "adult"]:
        assert n in names
    ds = load("Synthetic", n_train=50, n_test=5)
    assert ds.X_train.shape == (50, 20)
    with pytest.raises(ValueError) as info:
        load("mnist")
    assert "mnist" in str(info.value) and "hate-speech" in str(info.value)
    with pytest.raises(TypeError):
        load(3)


@needs_data
def test_dispatch_aliases():
    assert load("hate_speech", data_home=SHARED).n_test == 1071
    assert load("SST-2", data_home=SHARED).n_test == 872
    assert load("german", data_home=SHARED, seed=3).n_test == 200


# ----------------------------------------------------------- synthetic and noise
def test_make_synthetic_dense_deterministic():
    a = make_synthetic(n_train=300, n_test=100, n_features=5, seed=7)
    b = make_synthetic(n_train=300, n_test=100, n_features=5, seed=7)
    c = make_synthetic(n_train=300, n_test=100, n_features=5, seed=8)
    assert a.X_train.shape == (300, 5) and a.X_test.shape == (100, 5)
    assert a.X_train.dtype == np.float64 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    # learnable: a linear model does well on clean data
    from sklearn.linear_model import LogisticRegression

    acc = LogisticRegression().fit(a.X_train, a.y_train).score(a.X_test, a.y_test)
    assert acc > 0.8


def test_make_synthetic_noise_and_sparse():
    ds = make_synthetic(n_train=400, n_test=40, n_features=50, noise=0.1, sparse=True, seed=1)
    assert sp.isspmatrix_csr(ds.X_train) and ds.X_train.dtype == np.float64
    assert ds.X_train.shape == (400, 50) and ds.X_test.shape == (40, 50)
    assert (ds.X_train.data > 0).all() and np.allclose(ds.X_train.data, np.round(ds.X_train.data))
    flipped = ds.meta["flipped_idx"]
    assert flipped.size == 40
    diff = np.flatnonzero(ds.y_train != ds.meta["y_train_clean"])
    np.testing.assert_array_equal(diff, flipped)
    again = make_synthetic(n_train=400, n_test=40, n_features=50, noise=0.1, sparse=True, seed=1)
    assert (again.X_train != ds.X_train).nnz == 0


@pytest.mark.parametrize(
    "kw, exc, word",
    [
        ({"n_train": -1}, ValueError, "n_train"),
        ({"n_test": 0}, ValueError, "n_test"),
        ({"n_features": 2.5}, TypeError, "n_features"),
        ({"noise": 1.5}, ValueError, "noise"),
        ({"seed": -3}, ValueError, "seed"),
    ],
)
def test_make_synthetic_validation(kw, exc, word):
    with pytest.raises(exc, match=word):
        make_synthetic(**kw)


def test_flip_labels():
    y = np.array([0, 1] * 50)
    y2, idx = flip_labels(y, 0.23, seed=5)
    assert idx.size == round(0.23 * 100) and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.flatnonzero(y2 != y), idx)
    y3, idx3 = flip_labels(y, 0.23, seed=5)
    np.testing.assert_array_equal(idx, idx3)
    assert not np.array_equal(idx, flip_labels(y, 0.23, seed=6)[1])
    assert flip_labels(y, 0.0)[1].size == 0 and flip_labels(y, 1.0)[1].size == 100
    assert y2.dtype == np.int64 and y.tolist() == [0, 1] * 50  # input untouched
    with pytest.raises(ValueError, match="ratio"):
        flip_labels(y, -0.1)
    with pytest.raises(ValueError, match="0/1"):
        flip_labels([0, 2, 1], 0.5)
