"""Tests for Latent Shift, relative change / CF alignment and robust training (cfdkit.spurious)."""
import numpy as np
import pytest
import torch

from cfdkit.spurious.alignment import alignment_matrix, cf_alignment, rectify, relative_change, summarize_rc
from cfdkit.studies.cf_alignment import digit_setup, induced_correlation, robust_comparison
from cfdkit.spurious.autoencoder import Autoencoder, IdentityAutoencoder, random_colour_digits
from cfdkit.spurious.latent_shift import compose, latent_shift, linear_classifier, probability
from cfdkit.spurious.robust import RobustClassifier, group_metrics

F64 = dict(dtype=torch.float64, device="cpu")


def _points_on_level(w, level, n=6, seed=0):
    """n random points with w·x = level."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(w)))
    return X + np.outer(level - X @ w, w) / (w @ w)


# --------------------------------------------------------------------------- exact checks (identity AE)

@pytest.mark.parametrize("sign, expected", [(1.0, 1.0), (0.0, 0.0), (-1.0, -1.0)])
def test_relative_change_exact_parallel_orthogonal_antiparallel(sign, expected):
    rng = np.random.default_rng(1)
    d = 6
    w = rng.normal(size=d)
    u = rng.normal(size=d)
    u -= (u @ w) / (w @ w) * w  # orthogonal to w
    v = sign * w if sign != 0 else u
    X = _points_on_level(w, 2.0, n=8)
    ae = IdentityAutoencoder((d,))
    fb, f1 = linear_classifier(w), linear_classifier(v)
    df, res = cf_alignment(fb, {"f1": f1}, ae, X, max_pixel_frac=1e6, **F64)
    assert (res.base_change > 0.3).all()
    np.testing.assert_allclose(df["rc"], expected, atol=1e-12)


def test_relative_change_scaled_linear_scores():
    # linear scores without sigmoid: parallel weights 2w give RC = 2 exactly (up to rounding)
    rng = np.random.default_rng(2)
    w = rng.normal(size=4)
    X = _points_on_level(w, 0.9, n=5)
    df, _ = cf_alignment(linear_classifier(w, sigmoid=False), {"2w": linear_classifier(2 * w, sigmoid=False)},
                         IdentityAutoencoder((4,)), X, max_pixel_frac=100.0, **F64)
    np.testing.assert_allclose(df["rc"], 2.0, rtol=1e-10)


def test_relative_change_tie_rule_and_division():
    rc = relative_change([0.9, 0.9, 0.9], [0.2, 0.2, 0.9], [0.5, 0.5, 0.3], [-0.2, 0.15, 0.3])
    assert rc[0] == 1.0                      # equal changes -> exactly 1.0 (code's tie rule)
    assert rc[1] == pytest.approx(0.5)       # -0.35 / -0.7
    assert rc[2] == 1.0                      # 0 == 0 is a tie too
    with pytest.raises(ValueError, match="same shape"):
        relative_change([1, 2], [1], [1], [1])


def test_summarize_rc_filters_on_base_change():
    m, se, n = summarize_rc([1.0, 3.0, 100.0], [0.5, 0.4, 0.2], 0.3)
    assert (m, n) == (2.0, 2) and se == pytest.approx(np.std([1, 3], ddof=1) / np.sqrt(2))
    assert summarize_rc([1.0], [0.1])[2] == 0


# --------------------------------------------------------------------------- stop rules, one each

def test_stop_pred_diff():
    w = np.array([1.0, 0.0, 0.0])
    X = _points_on_level(w, 3.0, n=3)  # p0 = 0.95
    r = latent_shift(linear_classifier(w), IdentityAutoencoder((3,)), X, max_pixel_frac=1e6, step=0.5, **F64)
    assert (r.reason == "pred_diff").all()
    assert (r.pred0 - r.pred_cf > 0.6).all()
    # the previous λ had not dropped by 0.6 yet, and the search only went down
    prev = r.trace_pred[np.arange(3), r.n_steps - 2]
    assert (r.pred0 - prev <= 0.6).all()
    assert np.all(np.diff(r.trace_pred[0, : r.n_steps[0]]) <= 0)


def test_stop_low():
    w = np.array([1.0, 0.0])
    X = _points_on_level(w, -1.4, n=2)  # p0 ≈ 0.198: a drop of 0.6 is impossible, it falls below 0.05 first
    r = latent_shift(linear_classifier(w), IdentityAutoencoder((2,)), X, max_pixel_frac=1e6, step=0.5, **F64)
    assert (r.reason == "low").all() and (r.pred_cf < 0.05).all()


def test_stop_rising():
    # f(x) = σ((x0 - 1)²): descending from x0 = 2 the score falls to σ(0) = 0.5 at x0 = 1 and rises after
    def f(x):
        return torch.sigmoid((x[:, 0] - 1.0) ** 2)

    X = np.array([[2.0, 0.0], [2.0, 1.0]])
    r = latent_shift(f, IdentityAutoencoder((2,)), X, max_pixel_frac=1e6, step=0.05, integer_growth=False, **F64)
    assert (r.reason == "rising").all()
    k = r.n_steps[0]
    assert r.trace_pred[0, k - 1] > r.trace_pred[0, k - 2]
    assert r.pred_cf.min() > 0.5 - 1e-12


def test_stop_max_lambda():
    w = np.array([1e-4, 0.0])
    X = np.array([[1.0, 1.0]])
    r = latent_shift(linear_classifier(w), IdentityAutoencoder((2,)), X, max_lambda=30, max_pixel_frac=1e6, **F64)
    assert r.reason[0] == "max_lambda" and r.lambda_[0] >= 30
    assert r.trace_lambda[0, r.n_steps[0] - 2] < 30


def test_stop_pixels_and_growth_rule():
    w = np.array([1.0, 1.0])
    X = np.array([[1.0, 1.0]])
    r = latent_shift(linear_classifier(w), IdentityAutoencoder((2,)), X, max_pixel_frac=0.05, step=0.01,
                     integer_growth=False, **F64)
    assert r.reason[0] == "pixels"
    lam = r.trace_lambda[0, : r.n_steps[0]]
    np.testing.assert_allclose(lam[1:], lam[:-1] + 0.01 + 0.1 * lam[:-1])  # ~10 % geometric growth + step
    # the code's integer rule: λ + step + ceil(λ/10)
    r2 = latent_shift(linear_classifier(w), IdentityAutoencoder((2,)), X * 50, step=2.0, **F64)
    lam2 = r2.trace_lambda[0, : r2.n_steps[0]]
    np.testing.assert_array_equal(lam2[:4], [0.0, 2.0, 5.0, 8.0])


def test_batched_equals_one_at_a_time_and_frames():
    rng = np.random.default_rng(3)
    w = rng.normal(size=5)
    X = rng.normal(size=(7, 5)) + w
    fb = linear_classifier(w)
    a = latent_shift(fb, IdentityAutoencoder((5,)), X, n_frames=4, max_pixel_frac=2.0, **F64)
    b = latent_shift(fb, IdentityAutoencoder((5,)), X, n_frames=4, batch_size=1, max_pixel_frac=2.0, **F64)
    np.testing.assert_array_equal(a.reason, b.reason)
    np.testing.assert_allclose(a.lambda_, b.lambda_)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-12)
    np.testing.assert_allclose(a.frames[:, 0], X, atol=1e-12)           # frame 0 = reconstruction
    np.testing.assert_allclose(a.frames_pred[:, -1], a.pred_cf, atol=1e-12)
    assert a.frames.shape == (7, 4, 5) and a.trace_pred.shape[0] == 7


# --------------------------------------------------------------------------- bad input

def test_bad_inputs():
    ae = IdentityAutoencoder((3,))
    f = linear_classifier(np.ones(3))
    X = np.ones((2, 3))
    for pd_ in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="pred_diff"):
            latent_shift(f, ae, X, pred_diff=pd_)
    with pytest.raises(ValueError, match="empty"):
        latent_shift(f, ae, np.zeros((0, 3)))

    def nondiff(x):
        with torch.no_grad():
            return torch.sigmoid(x.sum(1))

    with pytest.raises(TypeError, match="not differentiable"):
        latent_shift(nondiff, ae, X)
    with pytest.raises(TypeError, match="torch tensor"):
        latent_shift(lambda x: np.zeros(len(x)), ae, X)

    class BadAE:
        def encode(self, x):
            return x.reshape(len(x), -1)

        def decode(self, z):
            return z[:, :2]

    with pytest.raises(ValueError, match="output shape"):
        latent_shift(f, BadAE(), X)
    with pytest.raises(TypeError, match="encode"):
        latent_shift(f, object(), X)
    with pytest.raises(TypeError, match="callable"):
        latent_shift("not a model", ae, X)
    with pytest.raises(ValueError, match="step"):
        latent_shift(f, ae, X, step=0)
    with pytest.raises(ValueError, match="shape"):
        latent_shift(lambda x: torch.sigmoid(x), ae, X)  # (n, 3) output
    with pytest.raises(ValueError, match="method"):
        RobustClassifier("dro").fit(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="groups"):
        RobustClassifier("groupdro").fit(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="bias"):
        RobustClassifier("flac").fit(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="base_change_limit"):
        alignment_matrix({"f": f}, {"f": f}, ae, X, base_change_limit=1.5)


def test_autoencoder_fit_seeded_and_not_fitted():
    from sklearn.exceptions import NotFittedError

    X = random_colour_digits(200, seed=0)
    assert X.shape == (200, 3, 8, 8) and X.min() >= 0 and X.max() <= 1
    a = Autoencoder(latent_dim=8, hidden=(32,), epochs=3, seed=5).fit(X)
    b = Autoencoder(latent_dim=8, hidden=(32,), epochs=3, seed=5).fit(X)
    np.testing.assert_array_equal(a.reconstruct(X[:5]), b.reconstruct(X[:5]))
    assert a.loss_curve_[-1] < a.loss_curve_[0]
    assert a.reconstruct(X[:3]).shape == (3, 3, 8, 8)
    with pytest.raises(NotFittedError):
        Autoencoder().reconstruct(X)
    with pytest.raises(ValueError, match="sigmoid"):
        Autoencoder(epochs=1).fit(X * 3)
    with pytest.raises(ValueError, match="per-input shape"):
        a.reconstruct(np.zeros((2, 10)))


def test_compose_and_probability():
    lin = torch.nn.Linear(3, 2).double()
    p0, p1 = probability(lin, target=0), probability(lin, target=1)
    x = torch.randn(4, 3, dtype=torch.float64)
    c = compose([(p0, 1.0), (p1, 0.3)])
    torch.testing.assert_close(c(x), torch.sigmoid(lin(x)[:, 0]) + 0.3 * torch.sigmoid(lin(x)[:, 1]))
    sm = probability(lin, target=1, kind="softmax")
    torch.testing.assert_close(sm(x), torch.softmax(lin(x), 1)[:, 1])
    with pytest.raises(ValueError):
        compose([])


# --------------------------------------------------------------------------- groupdro / metrics / rectify

def test_group_metrics_and_groupdro_weights():
    y = np.array([0, 0, 1, 1])
    g = np.array([0, 1, 2, 3])
    m = group_metrics(np.array([0.1, 0.6, 0.9, 0.4]), y, g)
    assert m["wga"] == 0.0 and m["acc"] == 0.5 and m["auc"] == 0.75
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    grp = np.where(X[:, 1] > 1.0, 1, 0)  # a small group with random labels: its loss stays high
    y[grp == 1] = rng.integers(0, 2, size=int(grp.sum()))
    clf = RobustClassifier("groupdro", hidden=(), epochs=30, lr=0.05, eta=0.1, seed=0).fit(X, y, groups=grp)
    assert clf.group_weights_[1] > clf.group_weights_[0]  # the worse group gets the larger weight


def test_rectify_lowers_alignment_with_spurious_direction():
    # identity AE; f_target uses w_t + 0.5 w_s, so its CFs move f_s; rectification should push beta < 0
    rng = np.random.default_rng(0)
    d = 4
    wt, ws = np.eye(d)[0] * 2, np.eye(d)[1] * 2
    f_t, f_s = linear_classifier(wt + 0.5 * ws), linear_classifier(ws)
    X = _points_on_level(wt + 0.5 * ws, 2.0, n=40) + rng.normal(scale=0.1, size=(40, d))
    res = rectify(f_t, f_s, IdentityAutoencoder((d,)), X[:30], X[30:], n_iter=8, lr=0.5, base_change_min=0.3,
                  max_pixel_frac=1e6, **F64)
    h = res.history
    assert res.beta < 0
    assert abs(h["rc_val"].iloc[-1]) < abs(h["rc_val"].iloc[0])


# --------------------------------------------------------------------------- the digit study (fast preset)

@pytest.fixture(scope="module")
def setup99():
    torch.set_num_threads(1)
    return digit_setup(rho=0.99, seed=0, fast=True)


def test_induced_correlation_biased_vs_unbiased(setup99):
    ind = induced_correlation(setup99)
    # a colour-biased ERM classifier shares the colour classifier's features, the unbiased one does not
    assert ind.loc["biased", "rc"] - ind.loc["unbiased", "rc"] > 0.2
    assert abs(ind.loc["unbiased", "rc"]) < 0.05
    # Eq. 4's composition raises the alignment above the unbiased classifier's
    assert ind.loc["composed", "rc"] > ind.loc["unbiased", "rc"] + 3 * ind.loc["composed", "rc_se"]
    assert (ind["rc_n"] > 30).all()


def test_robust_methods_less_aligned_than_erm(setup99):
    comp = robust_comparison(setup99, methods=("erm", "groupdro"))
    assert comp.loc["groupdro", "rc"] < comp.loc["erm", "rc"]
    assert comp.loc["groupdro", "wga"] >= comp.loc["erm", "wga"]


def test_alignment_matrix_diagonal_and_formatting():
    rng = np.random.default_rng(4)
    d = 4
    w, v = rng.normal(size=d), rng.normal(size=d)
    X = _points_on_level(w, 2.0, n=6) + _points_on_level(v, 2.0, n=6) * 0.0
    fs = {"w": linear_classifier(w), "v": linear_classifier(v)}
    M = alignment_matrix(fs, fs, IdentityAutoencoder((d,)), X, base_change_limit=0.0, max_pixel_frac=1e6, **F64)
    kept = M.n.to_numpy()
    assert (kept > 0).all()
    assert M.mean.loc["w", "w"] == 1.0 and M.mean.loc["v", "v"] == 1.0   # tie rule on the diagonal
    assert M.formatted().loc["w", "w"].startswith("1.00±")
    assert set(M.per_input["base"]) == {"w", "v"}


@pytest.fixture
def explorer_case():
    """The explorer module, a direction ``w`` and three linear classifiers: a base, the same, its opposite."""
    sa = pytest.importorskip("cfdkit_widgets.spurious_alignment")
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(5)
    w = rng.normal(size=3)
    return sa, w, {"b": linear_classifier(w), "same": linear_classifier(w), "anti": linear_classifier(-w)}


def test_explorer_pure_functions(explorer_case):
    sa, w, fs = explorer_case
    x = _points_on_level(w, 2.0, n=1)[0]
    m = sa.morph(fs, "b", IdentityAutoencoder((3,)), x, n_frames=5, max_pixel_frac=1e6, **F64)
    assert m["frames"].shape == (5, 3) and list(m["outputs"].columns) == ["b", "same", "anti"]
    t = sa.morph_table(m)
    assert t.loc["same", "relative change"] == 1.0 and t.loc["anti", "relative change"] == pytest.approx(-1.0)
    assert np.all(np.diff(m["outputs"]["b"]) <= 0)
    assert sa.check_index(2, 5) == 2
    with pytest.raises(sa.ExplorerError):
        sa.check_index(7, 5)
    with pytest.raises(sa.ExplorerError):
        sa.morph(fs, "nope", IdentityAutoencoder((3,)), x)


def test_explorer_never_reads_a_degenerate_counterfactual_as_alignment(explorer_case):
    """A search that stops at λ = 0 is 'no counterfactual', not RC = +1.00 for every classifier (tie rule 0 = 0)."""
    sa, w, fs = explorer_case
    ae = IdentityAutoencoder((3, 1, 1))          # a 3-channel 1x1 "image", so the frames can be drawn
    x_low = (-5 * w / np.linalg.norm(w)).reshape(3, 1, 1)   # base output 0.0004 < min_pred: stops at λ = 0
    m = sa.morph(fs, "b", ae, x_low, n_frames=5, max_pixel_frac=1e6, **F64)
    assert m["degenerate"] and np.all(m["lambdas"] == 0)
    assert all(np.isnan(v) for v in m["rc"].values())
    t = sa.morph_table(m)
    assert t["relative change"].isna().all()
    assert (t["reading"] == sa.NO_COUNTERFACTUAL).all() and sa.NO_COUNTERFACTUAL.startswith("no counterfactual")
    fig = sa.morph_figure(m)
    legend = [tx.get_text() for tx in fig.axes[-1].get_legend().get_texts()]
    assert not any("RC" in s for s in legend) and any(sa.NO_COUNTERFACTUAL in s for s in legend)
    assert sa.NO_COUNTERFACTUAL in fig.axes[-1].get_title()
    # a real counterfactual still reads as an alignment score, and a weak one is marked as not counted
    x = _points_on_level(w, 2.0, n=1)[0].reshape(3, 1, 1)
    m2 = sa.morph(fs, "b", ae, x, n_frames=5, max_pixel_frac=1e6, **F64)
    assert not m2["degenerate"] and m2["base_change"] > 0.3
    assert sa.rc_reading(m2, "same") == "RC = +1.00" and sa.rc_reading(m2, "anti") == "RC = -1.00"
    weak = dict(m2, base_change=0.1)
    assert sa.rc_reading(weak, "same").endswith("not counted)")
    assert sa.rc_reading(dict(m2, base_change=0.0), "same").startswith("no change in the base output")
    # the explorer opens on the first digit with a real counterfactual
    X = np.stack([x_low, x_low, x])
    assert sa.first_real_counterfactual(fs["b"], ae, X, max_pixel_frac=1e6, **F64) == 2
    assert sa.first_real_counterfactual(fs["b"], ae, X[:2], max_pixel_frac=1e6, **F64) is None
    pytest.importorskip("ipywidgets")
    ex = sa.AlignmentExplorer(fs, ae, X, n_frames=4, latent_shift_kwargs=dict(max_pixel_frac=1e6, **F64))
    assert ex.index.value == 2 and not ex._m["degenerate"]
    assert sa.AlignmentExplorer(fs, ae, X, n_frames=4, index=0,
                                latent_shift_kwargs=dict(max_pixel_frac=1e6, **F64))._m["degenerate"]
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_latent_shift_gpu_matches_cpu():
    rng = np.random.default_rng(6)
    w = rng.normal(size=6)
    X = rng.normal(size=(50, 6)) + w
    kw = dict(n_frames=3, max_pixel_frac=2.0, dtype=torch.float64)
    a = latent_shift(linear_classifier(w), IdentityAutoencoder((6,)), X, device="cpu", **kw)
    b = latent_shift(linear_classifier(w), IdentityAutoencoder((6,)), X, device="cuda", **kw)
    np.testing.assert_array_equal(a.reason, b.reason)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-10)
    ae = Autoencoder(latent_dim=4, hidden=(16,), epochs=2, seed=0, device="cuda").fit(random_colour_digits(64))
    assert next(ae.module_.parameters()).is_cuda
    clf = RobustClassifier("erm", hidden=(8,), epochs=2, device="cuda").fit(random_colour_digits(64),
                                                                           rng.integers(0, 2, 64))
    r = latent_shift(clf.torch_proba(), ae, random_colour_digits(8, seed=1), device="cuda", n_frames=2)
    assert r.frames.shape == (8, 2, 3, 8, 8)
