"""RelabelAudit.from_sklearn with a fitted Pipeline: raw inputs in, the same sets as doing the steps by hand."""
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cfdkit import RelabelAudit

POS = "good great fine lovely superb nice happy warm bright clever".split()
NEG = "bad awful poor dull boring sad cold grim weak silly".split()
FILL = "the a movie film plot actor scene story it was and very".split()


def _texts(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    out = []
    for lab in y:
        k = rng.integers(4, 10)
        own, other = (POS, NEG) if lab else (NEG, POS)
        words = list(rng.choice(FILL, k)) + list(rng.choice(own, 2)) + list(rng.choice(other, rng.integers(0, 3)))
        rng.shuffle(words)
        out.append(" ".join(words))
    return out, y.astype(np.int64)


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"income": rng.normal(50, 10, n), "age": rng.normal(40, 12, n),
                       "city": rng.choice(["north", "south", "east"], n)})
    z = 0.08 * (df["income"] - 50) - 0.05 * (df["age"] - 40) + (df["city"] == "north") * 0.8
    y = (z + rng.normal(0, 1, n) > 0.3).astype(np.int64).to_numpy()
    return df, y


def _lr():
    return LogisticRegression(C=2.0, solver="newton-cholesky", tol=1e-10, max_iter=1000)


@pytest.fixture(scope="module")
def text_case():
    tr, y = _texts(300, 0)
    te, _ = _texts(25, 1)
    pipe = make_pipeline(TfidfVectorizer(), _lr()).fit(tr, y)
    return tr, y, te, pipe


def test_text_pipeline_equals_steps_by_hand(text_case):
    tr, y, te, pipe = text_case
    a = RelabelAudit.from_sklearn(pipe, tr, y, device="cpu")
    vec, lr = pipe[0], pipe[-1]
    by_hand = RelabelAudit.from_sklearn(lr, vec.transform(tr), y, device="cpu")
    np.testing.assert_allclose(a.coef_, by_hand.coef_, atol=1e-12)
    fs, ref = a.flip_sets(te), by_hand.flip_sets(vec.transform(te))   # raw texts vs features
    assert fs.found.any()
    np.testing.assert_array_equal(fs.size, ref.size)
    np.testing.assert_array_equal(fs.flat_indices, ref.flat_indices)
    np.testing.assert_allclose(a.predict_proba(te), pipe.predict_proba(te), atol=1e-8)  # (n, 2), as scikit-learn
    np.testing.assert_array_equal(a.positive_proba(te), a.predict_proba(te)[:, 1])
    # the indices are raw rows: relabeling those texts' labels and refitting the *whole pipeline* flips
    i = int(np.nonzero(fs.found)[0][0])
    y2 = y.copy()
    y2[fs.indices(i)] = 1 - y2[fs.indices(i)]
    exact = RelabelAudit(l2=0.5, device="cpu").fit(vec.transform(tr), y2)  # vectorizer fixed, as in the audit
    assert (exact.positive_proba(vec.transform(te[i:i + 1]))[0] > 0.5) != (fs.prob[i] > 0.5)
    ver = a.verify(fs)
    assert ver.summary()["flip_rate"] > 0


def test_column_transformer_pipeline_on_dataframe():
    df, y = _frame(400, 2)
    te, _ = _frame(20, 3)
    ct = ColumnTransformer([("num", StandardScaler(), ["income", "age"]), ("cat", OneHotEncoder(), ["city"])])
    pipe = Pipeline([("prep", ct), ("clf", _lr())]).fit(df, y)
    a = RelabelAudit.from_sklearn(pipe, df, y, device="cpu")
    assert a.n_features_in_ == 5 and a.preprocessor_ is not None
    by_hand = RelabelAudit.from_sklearn(pipe[-1], ct.transform(df), y, device="cpu")
    fs, ref = a.flip_sets(te), by_hand.flip_sets(ct.transform(te))
    np.testing.assert_array_equal(fs.flat_indices, ref.flat_indices)
    np.testing.assert_array_equal(fs.size, ref.size)
    # columns by name: a reordered raw frame gives the same answer
    np.testing.assert_allclose(a.predict_proba(te[["city", "age", "income"]]), a.predict_proba(te), atol=1e-12)


def test_refit_with_fit_drops_the_pipeline(text_case):
    tr, y, te, pipe = text_case
    a = RelabelAudit.from_sklearn(pipe, tr, y, device="cpu")
    X = pipe[0].transform(tr)
    a.fit(X, y)
    assert not hasattr(a, "preprocessor_")
    assert a.flip_sets(pipe[0].transform(te)).size.shape == (len(te),)


def test_unsupported_last_step_is_named(text_case):
    tr, y, _, _ = text_case
    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("forest", RandomForestClassifier(n_estimators=3))]).fit(tr, y)
    with pytest.raises(TypeError, match="'forest' is a RandomForestClassifier"):
        RelabelAudit.from_sklearn(pipe, tr, y)


def test_unfitted_pipeline_and_bad_raw_inputs(text_case):
    tr, y, _, pipe = text_case
    with pytest.raises(ValueError, match="not fitted"):
        RelabelAudit.from_sklearn(make_pipeline(TfidfVectorizer(), LogisticRegression()), tr, y)
    df, yd = _frame(100, 4)
    ct = ColumnTransformer([("num", StandardScaler(), ["income", "age"]), ("cat", OneHotEncoder(), ["city"])])
    p2 = make_pipeline(ct, _lr()).fit(df, yd)
    with pytest.raises(ValueError, match="could not go through the pipeline's fitted steps"):
        RelabelAudit.from_sklearn(p2, df.drop(columns="city"), yd)
    a = RelabelAudit.from_sklearn(p2, df, yd, device="cpu")
    with pytest.raises(ValueError, match="X_test could not go through"):
        a.flip_sets(df[["income"]])


def test_pipeline_fitted_on_other_rows_is_refused(text_case):
    tr, y, _, pipe = text_case
    with pytest.raises(ValueError, match="not the optimum"):
        RelabelAudit.from_sklearn(pipe, tr[:200], y[:200])
