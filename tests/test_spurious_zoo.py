"""Tests for cfdkit.spurious.zoo (batched training, save/load) and cfdkit.spurious.scores (colour-score).

Equality of a batched member with the same member trained alone, on CPU in float64:
* against a zoo of one member (same batched code path): bit-for-bit (``torch.equal``). Members never interact:
  the grouped convolution computes each group separately, the batched einsum each member's product separately,
  Adam is element-wise, and the loss is a sum whose gradient reaches each member only through its own terms.
* against a plain ``nn.Module`` forward (``train_member``): equal to 1e-12, not bit-for-bit, because a grouped or
  channels-last convolution and a dense ``einsum`` may sum the same products in another order than
  ``F.conv2d``/``F.linear`` do; the rounding differences (~1e-16) do not grow beyond ~1e-14 in a few epochs.
"""
import pickle

import numpy as np
import pytest
import torch

from cfdkit.spurious.data import MEAN_COLORS, colored_digits, paint
from cfdkit.spurious.scores import bias_report, color_score, color_score_fn
from cfdkit.spurious.zoo import CNNSpec, ModelZoo, SmallCNN, TrainSettings, train_member, train_zoo

TINY = TrainSettings(n_train=150, epochs=3, batch_size=50)


@pytest.fixture(scope="module")
def zoo64():
    return train_zoo([0.02, 0.03, 0.04, 0.05], seeds=[5, 6, 7, 8], settings=TINY, dtype=torch.float64,
                     progress=False)


def test_member_equals_zoo_of_one_bitwise_and_alone_to_1e12(zoo64):
    one = train_zoo([0.04], seeds=[7], settings=TINY, dtype=torch.float64, progress=False)
    alone = dict(train_member(0.04, 7, settings=TINY).named_parameters())
    for k in zoo64.params:
        assert torch.equal(zoo64.params[k][2], one.params[k][0]), k
        np.testing.assert_allclose(zoo64.params[k][2].numpy(), alone[k].detach().numpy(), rtol=0, atol=1e-12)
    # and training did move the weights (the comparison is not between two untouched inits)
    init = train_zoo([0.04], seeds=[7], settings=TrainSettings(n_train=150, epochs=1, batch_size=150, lr=1e-12),
                     dtype=torch.float64, progress=False)
    assert (zoo64.params["dense2.weight"][2] - init.params["dense2.weight"][0]).abs().max() > 1e-3


def test_chunking_and_seed_reproducible(zoo64):
    again = train_zoo([0.02, 0.03, 0.04, 0.05], seeds=[5, 6, 7, 8], settings=TINY, dtype=torch.float64,
                      progress=False, chunk=3)
    for k in zoo64.params:
        assert torch.equal(zoo64.params[k], again.params[k])
    other = train_zoo([0.02], seeds=[9], settings=TINY, dtype=torch.float64, progress=False)
    assert not torch.equal(other.params["conv1.weight"][0], zoo64.params["conv1.weight"][0])


def test_member_module_matches_batched_prediction(zoo64):
    d = colored_digits("jitter", sigma2=0.05, seed=1)
    P = zoo64.predict_proba(d.X_test)
    assert P.shape == (4, 400, 10)
    net = zoo64.member(1)
    with torch.no_grad():
        p1 = torch.softmax(net(torch.as_tensor(d.X_test, dtype=torch.float64)), -1)
    np.testing.assert_allclose(P[1].numpy(), p1.numpy(), atol=1e-12)


def test_zoo_learns_and_bias_trend():
    # 4 levels x 4 members, small but real: accuracy on unbiased test digits and colour-score rise with sigma2
    st = TrainSettings(n_train=400, epochs=15, batch_size=50)
    z = train_zoo(np.repeat([0.02, 0.03, 0.04, 0.05], 4), settings=st, progress=False)
    d = colored_digits("jitter", sigma2=0.05, seed=99)
    r = bias_report(z, d)
    assert (r.aligned_accuracy > 0.5).all()  # it learned something
    m = r.groupby("sigma2")[["accuracy", "color_score"]].mean()
    assert m.accuracy[0.05] > m.accuracy[0.02] + 0.05
    assert m.color_score[0.05] > m.color_score[0.02] + 0.05
    assert np.corrcoef(r.sigma2, r.color_score)[0, 1] > 0.5
    assert (r.conflicting_accuracy < r.aligned_accuracy).all()


def test_save_load_roundtrip_and_not_a_zoo(tmp_path, zoo64):
    p = tmp_path / "z.pt"
    zoo64.save(p)
    z2 = ModelZoo.load(p)
    assert z2.spec == zoo64.spec and len(z2) == 4 and z2.settings == TINY
    for k in zoo64.params:
        assert torch.equal(z2.params[k], zoo64.params[k])
    np.testing.assert_array_equal(z2.sigma2, zoo64.sigma2)
    # a plain pickle of an arbitrary object
    bad = tmp_path / "evil.pkl"
    with open(bad, "wb") as f:
        pickle.dump(SmallCNN(), f)
    with pytest.raises(ValueError, match="not a cfdkit model zoo"):
        ModelZoo.load(bad)
    # a whole module saved with torch.save (needs unpickling classes) is refused
    mod = tmp_path / "module.pt"
    torch.save(SmallCNN(), mod)
    with pytest.raises(ValueError, match="not a cfdkit model zoo"):
        ModelZoo.load(mod)
    # a tensors-only torch file that is not a zoo
    sd = tmp_path / "state.pt"
    torch.save(SmallCNN().state_dict(), sd)
    with pytest.raises(ValueError, match="no format="):
        ModelZoo.load(sd)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not a cfdkit model zoo"):
        ModelZoo.load(junk)
    with pytest.raises(FileNotFoundError):
        ModelZoo.load(tmp_path / "missing.pt")


def test_subset_concat_weights(zoo64):
    s = zoo64.subset([3, 1])
    assert len(s) == 2 and torch.equal(s.params["conv2.weight"][0], zoo64.params["conv2.weight"][3])
    c = ModelZoo.concat([s, zoo64])
    assert len(c) == 6
    w = zoo64.weights()
    assert w["conv1"].shape == (4, 8 * 27 + 8) and w["dense2"].shape == (4, 32 * 10 + 10)
    assert sum(v.shape[1] for v in w.values()) == zoo64.spec.n_params == 3802
    deep = CNNSpec(hidden=(64, 32))
    with pytest.raises(ValueError, match="cannot concatenate"):
        ModelZoo.concat([zoo64, train_zoo([0.02], spec=deep, settings=TINY, progress=False)])


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(sigma2s=[0.02, 0.0]), ValueError, "sigma2s"),
    (dict(sigma2s=[]), ValueError, "sigma2s"),
    (dict(sigma2s=[0.02, 0.03], seeds=[1, 1]), ValueError, "distinct"),
    (dict(sigma2s=[0.02, 0.03], seeds=[1]), ValueError, "seeds"),
    (dict(sigma2s=[0.02], dtype=torch.int64), TypeError, "dtype"),
    (dict(sigma2s=[0.02], device="cuda:7" if not torch.cuda.is_available() else "nonsense"), ValueError, "device"),
])
def test_train_zoo_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        train_zoo(settings=TINY, progress=False, **kwargs)


def test_bad_spec_and_settings():
    with pytest.raises(ValueError, match="size"):
        CNNSpec(size=28)
    with pytest.raises(ValueError, match="hidden"):
        CNNSpec(hidden=())
    with pytest.raises(ValueError, match="epochs"):
        TrainSettings(epochs=0)


# ------------------------------------------------------------------------------- colour-score

def _score_by_loop(predict_proba, gray, y, palette):
    """Algorithm 1 written as literally as possible, one image at a time."""
    probs = []
    for g, t in zip(gray, y):
        p_assigned = predict_proba(paint(g[None], palette[t], dtype=np.float64))[0]
        if p_assigned.argmax() == t:
            for k in range(len(palette)):
                if k != t:
                    p_col = predict_proba(paint(g[None], palette[k], dtype=np.float64))[0]
                    probs.append(p_col[t] / p_assigned[t])
    return float(np.mean(probs))


def test_color_score_matches_algorithm_1_loop():
    d = colored_digits("jitter", sigma2=0.02, seed=0)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3 * 64, 10))

    def proba(X):
        z = X.reshape(len(X), -1) @ W
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    ref = _score_by_loop(proba, d.gray_test[:60], d.y_test[:60], MEAN_COLORS)
    got = color_score_fn(proba, d.gray_test[:60], d.y_test[:60], n_images=None)
    assert got == pytest.approx(ref, rel=1e-12)


def test_color_score_colour_blind_is_one_and_colour_reader_is_low(zoo64):
    d = colored_digits("jitter", sigma2=0.02, seed=0)
    net = zoo64.member(0)

    def blind(X):  # colour-blind: sees only where ink is, never which colour
        mask = (np.asarray(X).sum(1, keepdims=True) > 0).astype(np.float64).repeat(3, axis=1)
        with torch.no_grad():
            return torch.softmax(net(torch.as_tensor(mask)), -1).numpy()

    assert color_score_fn(blind, d.gray_test, d.y_test) == pytest.approx(1.0, abs=1e-12)

    def reader(X):  # predicts the class whose mean colour is nearest to the mean ink colour
        X = np.asarray(X)
        ink = X.max((2, 3))  # every digit has a full-intensity pixel: its colour is exact
        z = -((ink[:, None, :] - MEAN_COLORS[None]) ** 2).sum(-1) * 50
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    assert color_score_fn(reader, d.gray_test, d.y_test) < 0.05


def test_zoo_color_score_equals_per_member_function(zoo64):
    d = colored_digits("jitter", sigma2=0.02, seed=0)
    cs, kept = color_score(zoo64, d.gray_test, d.y_test, n_images=200, return_counts=True)
    for i in (0, 3):
        net = zoo64.member(i)

        def proba(X):
            with torch.no_grad():
                return torch.softmax(net(torch.as_tensor(X)), -1).numpy()

        assert cs[i] == pytest.approx(color_score_fn(proba, d.gray_test, d.y_test, n_images=200), rel=1e-9)
    assert (kept > 0).all()
    with pytest.raises(ValueError, match="mode='jitter'"):
        color_score(zoo64, d.gray_test, d.y_test + 10)
    b = colored_digits("binary", rho=0.9)
    with pytest.raises(ValueError, match="jitter"):
        bias_report(zoo64, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_zoo_on_gpu_matches_cpu():
    cpu = train_zoo([0.02, 0.05], seeds=[1, 2], settings=TINY, dtype=torch.float64, progress=False, device="cpu")
    gpu = train_zoo([0.02, 0.05], seeds=[1, 2], settings=TINY, dtype=torch.float64, progress=False, device="cuda")
    assert gpu.device.type == "cuda"
    for k in cpu.params:
        np.testing.assert_allclose(gpu.params[k].cpu().numpy(), cpu.params[k].numpy(), atol=1e-9)
