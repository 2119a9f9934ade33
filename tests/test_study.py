"""``convbench study``: layers' gradients against float64 finite differences and torch
autograd, the data, the models' accounting, the CLI's bad input and a quick study end to end."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from convbench.cli import main
from convbench.study.digits import load_split, place, ring, shift_image
from convbench.study.experiment import StudyConfig, run_study
from convbench.study.layers import Conv2d, Dense, Engine, GlobalMaxPool2d, LocallyConnected2d, MaxPool2d, ReLU
from convbench.study.models import MODELS, build

from .conftest import backend_params

F64_CONV = ["reference", "direct_numba", "im2col_blas", "fft_pyfftw", "fft_scipy", "winograd_f4x3", "sparse_csr",
            "dense_matrix"]


def _f64(layer):
    for k in layer.params:
        layer.params[k] = layer.params[k].astype(np.float64)
        layer.version += 1
    return layer


def _check_grads(layer, x, rng, n_probe=5, tol=1e-6):
    """Analytic gradients of sum(R * layer(x)) against central differences (float64)."""
    y = layer.forward(x.copy())
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r.copy())

    def loss():
        layer.version += 1  # invalidate cached plans: parameters moved
        return float((layer.forward(x.copy()) * r).sum())

    eps = 1e-6
    for name, arr in list(layer.params.items()) + ([("x", x)] if dx is not None else []):
        g = layer.grads[name] if name != "x" else dx
        flat = arr.reshape(-1)
        for i in rng.choice(flat.size, size=min(n_probe, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            num = (up - down) / (2 * eps)
            assert abs(g.reshape(-1)[i] - num) <= tol * max(1.0, abs(num)), (name, i, g.reshape(-1)[i], num)


@pytest.mark.parametrize("backend", [b for b in backend_params("conv") if b.values[0] in F64_CONV])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_conv_layer_gradients_match_finite_differences(backend, stride, dilation):
    rng = np.random.default_rng(1)
    eng = Engine(conv=backend)
    layer = _f64(Conv2d(2, 3, 3, stride, dilation, dilation, rng=rng, engine=eng))
    if eng.instance(backend).supports(layer.problem((2, 2, 9, 9))) is not None:
        pytest.skip(f"{backend} does not run stride {stride} dilation {dilation}")
    _check_grads(layer, rng.standard_normal((2, 2, 9, 9)), rng)


def test_backend_without_a_direction_falls_back_and_says_so():
    rng = np.random.default_rng(2)
    eng = Engine(conv="sparse_csr")
    layer = _f64(Conv2d(1, 2, 3, 1, 1, rng=rng, engine=eng))
    _check_grads(layer, rng.standard_normal((2, 1, 6, 6)), rng)
    assert any("sparse_csr" in v and "im2col_blas" in v for v in eng.notes.values()), eng.notes


@pytest.mark.parametrize("make", [
    lambda rng: LocallyConnected2d(2, 3, (7, 7), 3, 1, 1, rng=rng),
    lambda rng: LocallyConnected2d(2, 3, (7, 7), 3, 2, 1, rng=rng),
    lambda rng: Dense(12, 5, rng=rng),
], ids=["lc", "lc_stride2", "dense"])
def test_gemm_layer_gradients_match_finite_differences(make):
    rng = np.random.default_rng(3)
    layer = _f64(make(rng))
    shape = (3, 12) if isinstance(layer, Dense) else (3, 2, 7, 7)
    _check_grads(layer, rng.standard_normal(shape), rng)


@pytest.mark.parametrize("backend", [b for b in backend_params("pool") if b.values[0] in ("pool_numba", "pool_numpy",
                                                                                          "pool_reference")])
def test_pool_and_relu_gradients(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8))  # distinct values: the argmax is unique
    _check_grads(MaxPool2d(2, engine=Engine(pool=backend)), x, rng, n_probe=8)
    _check_grads(ReLU(), x + 0.05, rng, n_probe=8)
    gmp = GlobalMaxPool2d(engine=Engine(pool=backend))
    _check_grads(gmp, rng.standard_normal((2, 3, 7, 5)), rng, n_probe=8)
    np.testing.assert_array_equal(gmp.forward(x, False)[..., 0, 0], x.max(axis=(2, 3)))


@pytest.mark.parametrize("name", MODELS)
def test_model_gradients_match_finite_differences(name):
    rng = np.random.default_rng(5)
    model = build(name, 10, 0)
    for layer in model.layers:
        _f64(layer)
    x = place(rng.random((4, 8, 8)), 10).astype(np.float64)
    y = rng.integers(0, 10, 4)
    model.loss_and_grad(x, y)
    grads = {(id(la), k): la.grads[k].copy() for la, k in model.parameters()}
    eps = 1e-6
    for la, k in model.parameters():
        flat = la.params[k].reshape(-1)
        for i in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            old = flat[i]
            vals = []
            for v in (old + eps, old - eps):
                flat[i] = v
                for layer in model.layers:
                    layer.version += 1
                vals.append(model.loss_and_grad(x, y))
            flat[i] = old
            num = (vals[0] - vals[1]) / (2 * eps)
            assert abs(grads[(id(la), k)].reshape(-1)[i] - num) <= 1e-6 * max(1, abs(num)), (name, la.name, k, i)


def test_cnn_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    for name in ("cnn", "cnn_stride", "cnn_gap"):
        model = build(name, 16, 1)
        x = place(rng.random((5, 8, 8)).astype(np.float32), 16)
        y = rng.integers(0, 10, 5)
        loss = model.loss_and_grad(x, y)
        convs = model.conv_layers()
        fc = model.layers[-1]
        tp = {(id(la), k): torch.tensor(la.params[k], requires_grad=True) for la, k in model.parameters()}
        h = torch.tensor(x)
        for layer in model.layers:
            if layer in convs:
                h = F.conv2d(h, tp[(id(layer), "w")], tp[(id(layer), "b")], stride=layer.s, padding=layer.p)
            elif layer.name == "relu":
                h = F.relu(h)
            elif layer.name.startswith("pool"):
                h = F.max_pool2d(h, 2)
            elif layer.name == "global_pool":
                h = F.adaptive_max_pool2d(h, 1)
            elif layer.name == "flatten":
                h = h.reshape(len(h), -1)
            else:
                h = h @ tp[(id(fc), "w")].T + tp[(id(fc), "b")]
        tl = F.cross_entropy(h, torch.tensor(y))
        tl.backward()
        assert abs(loss - tl.item()) < 1e-5
        for la, k in model.parameters():
            np.testing.assert_allclose(la.grads[k], tp[(id(la), k)].grad.numpy(), rtol=1e-4, atol=1e-6)


def test_data_split_is_seeded_disjoint_and_shifts_are_exact():
    a, b, c = load_split(0), load_split(0), load_split(1)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    assert not np.array_equal(a.test_y, c.test_y)
    assert len(a.train_y) + len(a.test_y) == 1797
    assert len(ring(0)) == 1 and len(ring(1)) == 8 and len(ring(3)) == 24
    img = place(a.test_x[:2], 20)
    np.testing.assert_array_equal(shift_image(img, 2, -3), place(a.test_x[:2], 20, [(2, -3), (2, -3)]))


def test_model_accounting():
    cnn, lc, mp, mf = (build(n, 24, 0) for n in ("cnn", "locally_connected", "mlp_params", "mlp_flops"))
    assert cnn.n_params() == 80 + 1168 + 576 * 10 + 10
    assert lc.flops_fwd() == cnn.flops_fwd() and lc.n_params() > 20 * cnn.n_params()
    assert abs(mp.n_params() - cnn.n_params()) / cnn.n_params() < 0.1
    assert abs(mf.flops_fwd() - cnn.flops_fwd()) / cnn.flops_fwd() < 0.01
    rf = {r["layer"]: r["receptive_field"] for r in cnn.table()}
    assert (rf["conv1"], rf["pool1"], rf["conv2"], rf["pool2"]) == (3, 4, 8, 10)
    gap = build("cnn_gap", 24, 0)
    assert gap.n_params() == 80 + 1168 + 16 * 10 + 10  # the CNN's convolutions, a 16->10 head
    assert [r["out_shape"] for r in gap.table()][-3:] == ["16x1x1", "16", "10"]
    assert {r["layer"]: r["receptive_field"] for r in gap.table()}["global_pool"] == 24  # the whole canvas
    dil = {r["layer"]: r["receptive_field"] for r in build("cnn_dilated", 24, 0).table()}
    assert dil["conv2"] == 12 and build("cnn_dilated", 24, 0).n_params() == cnn.n_params()


@pytest.mark.parametrize("args,needle", [
    (["--models", "cnn,resnet"], "unknown model 'resnet'"),
    (["--canvas", "6"], "smaller than the 8x8 digit"),
    (["--epochs", "-2"], "--epochs -2"),
    (["--batch", "0"], "--batch 0"),
    (["--backend", "winograd_f4x3"], "cannot run cnn_stride's conv1"),
    (["--backend", "nosuch"], "accepted: auto,"),
    (["--pool-backend", "nosuch"], "accepted: pool_"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, needle):
    assert main(["study", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_quick_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["study", "--quick", "--models", "cnn,cnn_gap,mlp_params", "--out", str(out), "--quiet"]) == 0
    s = out / "study"
    for f in ("models.csv", "equivariance.csv", "layers.csv", "accuracy_vs_size.csv", "seeds.csv", "inference.csv",
              "insitu.csv", "invariance.csv", "curves.csv", "report.md", "report.html", "plots/accuracy_vs_shift.png",
              "plots/equivariance.svg", "plots/filters.png", "plots/accuracy_vs_size.png", "plots/computation.png"):
        assert (s / f).is_file(), f
    rows = list(csv.DictReader(open(s / "models.csv")))
    assert [r["model"] for r in rows] == ["cnn", "cnn_gap", "mlp_params"]
    inv = list(csv.DictReader(open(s / "invariance.csv")))
    assert [(r["model"], r["arm"], r["jitter"]) for r in inv] == [
        (m, arm, j) for arm, j in (("centred", "0"), ("jitter", "2")) for m in ("cnn", "cnn_gap", "mlp_params")]
    for col in ("params", "flops_fwd", "train_s_per_epoch", "images_to_90", "acc_shift_2", "kept_at_max_shift"):
        assert all(r[col] != "" for r in inv), col
    curves = list(csv.DictReader(open(s / "curves.csv")))
    assert len(curves) == 2 * 3 * (1 + 2 * 4)  # two arms, three models, the start and 4 checkpoints per epoch
    assert max(int(r["images"]) for r in curves) == 2 * len(load_split(0).train_y)
    for col in ("params", "flops_fwd", "flops_step", "acc_shift_0", "acc_shift_1", "acc_shift_2",
                "train_s_per_epoch", "infer_s_per_image"):
        assert all(r[col] != "" for r in rows), col
    assert float(rows[0]["acc_shift_0"]) > 0.5  # trained: far above chance
    eq = {(r["layer"], int(r["shift"])): float(r["rel_diff"]) for r in csv.DictReader(open(s / "equivariance.csv"))}
    assert max(v for (la, d), v in eq.items() if la == "conv") < 1e-5
    assert min(v for (la, d), v in eq.items() if la == "dense" and d > 0) > 0.5
    assert eq[("conv_pool", 2)] < 1e-5 and eq[("conv_pool", 1)] > 1e-3
    assert eq[("global_pool", 0)] == 0 and max(v for (la, d), v in eq.items() if la == "global_pool") < 0.5
    text = (s / "report.md").read_text()
    assert "What was measured" in text and "Centred test accuracy" in text
    assert "Where translation invariance comes from" in text and "Learned instead" in text
    # nothing is overwritten: a second study into the same directory is refused
    assert main(["study", "--quick", "--out", str(out)]) == 2
    assert "already holds a study" in capsys.readouterr().err


def test_no_training_is_chance_level(tmp_path):
    cfg = StudyConfig.quick_config(models=("mlp_params",), epochs=0, test_limit=300, sizes=(50,))
    res = run_study(tmp_path, cfg, log=lambda m: None)
    row = next(csv.DictReader(open(res.files["models"])))
    assert float(row["acc_shift_0"]) < 0.3
