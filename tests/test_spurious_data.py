"""Tests for cfdkit.spurious.data (coloured digits from the bundled sklearn digits)."""
import numpy as np
import pytest

from cfdkit.spurious.data import (BINARY_COLORS, MEAN_COLORS, colored_digits, jitter_colors, load_gray_digits,
                                  paint)


def test_jitter_shapes_ranges_and_groups():
    d = colored_digits("jitter", sigma2=0.03, seed=1)
    assert d.X_train.shape == (1000, 3, 8, 8) and d.X_train.dtype == np.float32
    assert d.X_val.shape[0] == 397 and d.X_test.shape[0] == 400
    for s in ("train", "val", "test"):
        X = getattr(d, f"X_{s}")
        col = getattr(d, f"color_{s}")
        assert X.min() >= 0 and X.max() <= 1
        assert np.all((col > 0) & (col < 1))
        # images are the grey digit times the colour
        np.testing.assert_allclose(X, paint(getattr(d, f"gray_{s}"), col), rtol=1e-6, atol=1e-7)
    # training colours come from the own class, test colours from a random class
    assert np.array_equal(d.color_id_train, d.y_train) and d.groups_train.all()
    assert 0.03 < d.groups_test.mean() < 0.25
    assert set(np.unique(d.color_id_test)) == set(range(10))
    # split pools are disjoint and cover all digits
    idx = np.concatenate([d.info["train_index"], d.info["val_index"], d.info["test_index"]])
    assert len(np.unique(idx)) == 1797


def test_jitter_colour_statistics_follow_sigma2():
    rng = np.random.default_rng(0)
    ids = np.full(20000, 2)  # yellow (253, 233, 16): far from the walls in channel 0..1
    for s2 in (0.02, 0.05):
        c = jitter_colors(ids, s2, rng, clip="redraw")
        assert np.all((c > 0) & (c < 1))
    lo = jitter_colors(np.full(20000, 1), 0.02, rng)  # teal (0, 128, 128): channel 1 centred at ~0.5
    hi = jitter_colors(np.full(20000, 1), 0.05, rng)
    # redraw = a normal truncated to (0, 1): compare with scipy's truncated-normal moments
    from scipy.stats import truncnorm
    m = 128 / 255
    for c, s2 in ((lo, 0.02), (hi, 0.05)):
        sd = np.sqrt(s2)
        ref = truncnorm((0 - m) / sd, (1 - m) / sd, loc=m, scale=sd)
        assert abs(c[:, 1].var() - ref.var()) < 0.1 * ref.var()
        assert abs(c[:, 1].mean() - ref.mean()) < 0.01
    assert hi[:, 1].var() > lo[:, 1].var() * 1.8


def test_seeded_and_split_fixed():
    a = colored_digits("jitter", sigma2=0.02, seed=3)
    b = colored_digits("jitter", sigma2=0.02, seed=3)
    c = colored_digits("jitter", sigma2=0.02, seed=4)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_train, c.X_train)
    # same digits in test whatever the colour seed
    assert np.array_equal(a.digit_test, c.digit_test) and np.array_equal(a.gray_test, c.gray_test)


def test_binary_groups_and_rho():
    d = colored_digits("binary", rho=0.9, seed=0)
    assert d.n_classes == 2
    assert np.array_equal(d.y_train, (d.digit_train >= 5).astype(int))
    agree = (d.color_id_train == d.y_train).mean()
    assert 0.86 < agree < 0.94
    assert np.array_equal(d.groups_test, 2 * d.y_test + d.color_id_test)
    for s in ("val", "test"):
        g = np.bincount(getattr(d, f"groups_{s}"), minlength=4)
        assert (g > 0).all()
        y, a = getattr(d, f"y_{s}"), getattr(d, f"color_id_{s}")
        for c in (0, 1):  # balanced colour within each class
            assert abs(a[y == c].mean() - 0.5) <= 0.5 / (y == c).sum() + 1e-12
    np.testing.assert_array_equal(d.color_train, BINARY_COLORS[d.color_id_train])
    # red images have no green channel
    red = d.color_id_train == 0
    assert d.X_train[red][:, 1].max() == 0 and d.X_train[red][:, 0].max() > 0


def test_size16_shift_subset_half_and_float64():
    d8 = colored_digits("jitter", sigma2=0.05, seed=0)
    d16 = colored_digits("jitter", sigma2=0.05, seed=0, size=16, dtype=np.float64)
    assert d16.X_train.shape == (1000, 3, 16, 16) and d16.X_train.dtype == np.float64
    np.testing.assert_allclose(d16.X_train[:, :, ::2, ::2], d8.X_train, rtol=1e-6)
    s = colored_digits("jitter", sigma2=0.05, seed=0, shift=1)
    assert not np.array_equal(s.gray_train, d8.gray_train)
    # a shift only moves or drops ink, never adds it; about 1 in 9 images is not moved
    assert np.all(s.gray_train.sum(axis=(1, 2)) <= d8.gray_train.sum(axis=(1, 2)) + 1e-12)
    same = np.all(s.gray_train == d8.gray_train, axis=(1, 2)).mean()
    assert 0.05 < same < 0.2
    sub = colored_digits("jitter", sigma2=0.05, seed=0, n_train=300)
    assert sub.X_train.shape[0] == 300
    first = colored_digits("jitter", sigma2=0.05, train_digits="first")
    second = colored_digits("jitter", sigma2=0.05, train_digits="second")
    assert not set(first.info["train_index"]) & set(second.info["train_index"])


def test_paint_exact_colour():
    gray, _ = load_gray_digits()
    X = paint(gray[:5], MEAN_COLORS[3])
    assert X.shape == (5, 3, 8, 8)
    on = gray[:5] == 1.0
    np.testing.assert_allclose(X[:, 0][on], MEAN_COLORS[3, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="colors"):
        paint(gray[:5], np.ones((4, 3)))


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(mode="rainbow", sigma2=0.02), ValueError, "mode="),
    (dict(mode="jitter"), ValueError, "sigma2 is required"),
    (dict(mode="jitter", sigma2=0.0), ValueError, "sigma2=0.0"),
    (dict(mode="jitter", sigma2=-0.1), ValueError, "sigma2"),
    (dict(mode="jitter", sigma2=float("nan")), ValueError, "sigma2"),
    (dict(mode="jitter", sigma2="0.02"), TypeError, "sigma2"),
    (dict(mode="binary"), ValueError, "rho is required"),
    (dict(mode="binary", rho=0.5), ValueError, "open interval"),
    (dict(mode="binary", rho=1.0), ValueError, "open interval"),
    (dict(mode="binary", rho=0.3), ValueError, "rho=0.3"),
    (dict(mode="binary", rho=0.9, sigma2=0.02), ValueError, "only used by mode='jitter'"),
    (dict(mode="jitter", sigma2=0.02, rho=0.9), ValueError, "only used by mode='binary'"),
    (dict(mode="jitter", sigma2=0.02, size=12), ValueError, "size=12"),
    (dict(mode="jitter", sigma2=0.02, shift=-1), ValueError, "shift"),
    (dict(mode="jitter", sigma2=0.02, shift=5), ValueError, "shift=5"),
    (dict(mode="jitter", sigma2=0.02, n_train=5000), ValueError, "n_train=5000"),
    (dict(mode="jitter", sigma2=0.02, seed=1.5), TypeError, "seed"),
    (dict(mode="jitter", sigma2=0.02, train_digits="third"), ValueError, "train_digits"),
    (dict(mode="jitter", sigma2=0.02, dtype=np.int32), TypeError, "dtype"),
])
def test_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        colored_digits(**kwargs)
