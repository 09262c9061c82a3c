"""Augmented coloured digits: enough minority images at rho = 0.99, seeded, balanced evaluation splits."""
import numpy as np
import pytest

from cfdkit.spurious.data import augmented_colored_digits


@pytest.fixture(scope="module")
def d99():
    return augmented_colored_digits(0.99, seed=0)


def test_minorities_and_shapes(d99):
    assert d99.X_train.shape == (24_000, 3, 16, 16) and d99.size == 16
    mc = d99.info["minority_counts"]
    assert mc["y0_green"] >= 100 and mc["y1_red"] >= 100
    assert np.array_equal(np.bincount(d99.groups_train, minlength=4)[[1, 2]], [mc["y0_green"], mc["y1_red"]])
    # evaluation splits are balanced over the four groups
    counts = np.bincount(d99.groups_test, minlength=4)
    assert counts.min() >= counts.max() - 3
    assert d99.X_train.min() >= 0 and d99.X_train.max() <= 1


@pytest.mark.parametrize("seed", range(10))
def test_at_least_100_per_minority_for_seeds_0_9(seed):
    mc = augmented_colored_digits(0.99, seed=seed, eval_copies=1).info["minority_counts"]
    assert min(mc.values()) >= 100, mc


def test_same_seed_same_bits_and_augmentation_varies(d99):
    again = augmented_colored_digits(0.99, seed=0)
    assert np.array_equal(d99.X_train, again.X_train) and np.array_equal(d99.groups_train, again.groups_train)
    other = augmented_colored_digits(0.99, seed=1, eval_copies=1)
    assert not np.array_equal(d99.gray_train, other.gray_train)
    # the copies of one base digit differ (the augmentation did something)
    assert np.abs(d99.gray_train[0] - d99.gray_train[1]).max() > 0.1


@pytest.mark.parametrize("kw, word", [({"rho": 1.0}, "rho"), ({"size": 8}, "size"), ({"copies": 0}, "copies"),
                                      ({"max_rotate": float("nan")}, "max_rotate"), ({"elastic": -1.0}, "elastic")])
def test_bad_arguments(kw, word):
    with pytest.raises((ValueError, TypeError), match=word):
        augmented_colored_digits(**kw)
