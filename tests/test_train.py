"""probest._train: the shared training loop (reference equality, early stopping, schedules,
clipping, non-finite losses, weighted minibatches, seeding)."""

import math
import random
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from probest._train import (
    EMA,
    BatchSampler,
    TrainConfig,
    lr_factor,
    train,
    validation_split,
)
from probest.base import TorchEstimator


class _Owner(TorchEstimator):
    """The estimator a run belongs to (history_, progress)."""


def _sgd(params, lr, weight_decay):
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


def _problem(seed=0, n=64, d=3):
    """A small regression net, data and a seeded minibatch loss."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(n, generator=g,
                                                                                       dtype=torch.float64)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    draw = BatchSampler(n, 16, None, torch.Generator().manual_seed(seed + 1), torch.device("cpu"))

    def loss_fn(step):
        idx = draw()
        return ((net(X[idx]).squeeze(-1) - y[idx]) ** 2).mean()

    return net, loss_fn


def _reference_loop(net, loss_fn, max_iter, lr, weight_decay, clip, ema, log_every):
    """A plain, written-out Adam + clipping + EMA loop: what train() must reproduce exactly."""
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    shadow = [p.detach().clone() for p in params]
    objectives, acc = [], []
    for step in range(max_iter):
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        d = min(ema, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for s, p in zip(shadow, params):
                s.lerp_(p, 1.0 - d)
        acc.append(loss.detach())
        if (step + 1) % log_every == 0 or step + 1 == max_iter:
            total = acc[0]
            for a in acc[1:]:
                total = total + a
            objectives.append(float(total / len(acc)))
            acc = []
    with torch.no_grad():
        for p, s in zip(params, shadow):
            p.copy_(s)
    return objectives


def test_train_equals_a_written_out_reference_loop_bitwise():
    net_a, loss_a = _problem()
    net_b, loss_b = _problem()
    est = _Owner()
    cfg = TrainConfig(max_iter=37, lr=1e-2, weight_decay=1e-3, clip=0.5, ema=0.9, n_logs=5)
    res = train(est, net_a, loss_a, cfg)
    ref = _reference_loop(net_b, loss_b, 37, 1e-2, 1e-3, 0.5, 0.9, cfg.log_interval)
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(pa, pb)
    assert [h["objective"] for h in est.history_] == ref
    assert [h["iter"] for h in est.history_] == [7, 14, 21, 28, 35, 37]
    assert set(est.history_[0]) == {"iter", "objective", "time"}  # no lr/val keys unless asked
    assert res.converged and res.n_iter == 37 and not res.stopped_early and res.best_iter is None


def _quadratic_run(patience, restore_best, max_iter=60, lr=0.05):
    """theta from 0 towards 2 (training loss (theta-2)^2) by SGD; validation (theta-1)^2 is best
    near theta = 1, then worsens: a textbook early-stopping run."""
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    est = _Owner()
    cfg = TrainConfig(max_iter=max_iter, lr=lr, optimizer=_sgd, clip=None, log_every=1,
                      patience=patience, restore_best=restore_best)
    res = train(est, [theta], lambda step: ((theta - 2.0) ** 2).sum(), cfg,
                validation=lambda: ((theta - 1.0) ** 2).sum())
    return theta.detach().item(), res, est.history_


def _trajectory(n, lr=0.05):
    t, out = 0.0, []
    for _ in range(n):
        t = t - lr * 2.0 * (t - 2.0)
        out.append(t)
    return out  # out[k] = theta after k + 1 steps


def test_early_stopping_restores_the_best_validation_weights():
    theta, res, hist = _quadratic_run(patience=3, restore_best=True)
    traj = _trajectory(60)
    vals = [h["val_objective"] for h in hist]
    best_k = int(np.argmin(vals))
    assert res.stopped_early and res.best_iter == best_k + 1
    assert res.n_iter == res.best_iter + 3 < 60  # three validations without improvement, then stop
    assert res.best_validation == min(vals)
    assert theta == pytest.approx(traj[best_k], abs=1e-12)  # the best step's weights are back
    assert abs(traj[best_k] - 1.0) == min(abs(t - 1.0) for t in traj[: res.n_iter])
    # without restore_best the run stops at the same step but keeps its last weights
    theta_last, res_last, _ = _quadratic_run(patience=3, restore_best=False)
    assert res_last.n_iter == res.n_iter
    assert theta_last == pytest.approx(traj[res.n_iter - 1], abs=1e-12) and theta_last != theta


def test_no_patience_runs_to_the_end_but_keeps_the_best_weights():
    theta, res, hist = _quadratic_run(patience=None, restore_best=True)
    assert res.n_iter == 60 and not res.stopped_early and len(hist) == 60
    assert theta == pytest.approx(_trajectory(60)[res.best_iter - 1], abs=1e-12)
    assert abs(theta - 1.0) < abs(_trajectory(60)[-1] - 1.0)


@pytest.mark.parametrize("schedule,warmup", [("cosine", 0), ("linear", 5), ("constant", 4), (None, 3)])
def test_lr_schedule_follows_the_documented_factor(schedule, warmup):
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    values = []

    def loss_fn(step):
        values.append(theta.detach().item())
        return theta.sum()  # gradient 1: an SGD step moves theta by exactly -lr_t

    est = _Owner()
    n, lr = 20, 0.1
    cfg = TrainConfig(max_iter=n, lr=lr, optimizer=_sgd, clip=None, log_every=1, schedule=schedule,
                      warmup=warmup)
    train(est, [theta], loss_fn, cfg)
    values.append(theta.detach().item())
    expected = [lr * lr_factor(t, n, schedule, warmup) for t in range(n)]
    assert [h["lr"] for h in est.history_] == pytest.approx(expected, rel=1e-12)
    steps = -np.diff(values)
    np.testing.assert_allclose(steps, expected, rtol=1e-10)
    if warmup:
        assert expected[0] == pytest.approx(lr / warmup) and expected[warmup - 1] == pytest.approx(lr)
    if schedule in ("cosine", "linear"):
        assert np.all(np.diff(expected[warmup:]) < 0) and expected[-1] < 0.2 * lr


def test_lr_factor_endpoints():
    assert lr_factor(0, 100, "cosine") == 1.0
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(50, 100, "linear") == pytest.approx(0.5)
    assert lr_factor(99, 100, "linear") == pytest.approx(0.01)
    assert lr_factor(9, 100, "cosine", warmup=10) == 1.0 and lr_factor(0, 100, None, 10) == 0.1


def test_schedule_factory_is_used():
    theta = torch.zeros(1, requires_grad=True)
    est = _Owner()
    cfg = TrainConfig(max_iter=6, lr=1.0, optimizer=_sgd, clip=None, log_every=1,
                      schedule=lambda opt, n: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5))
    train(est, [theta], lambda step: theta.sum(), cfg)
    assert [h["lr"] for h in est.history_] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert theta.item() == pytest.approx(-3.5)


@pytest.mark.parametrize("clip,expected_norm", [(1.0, 1.0), (None, 2000.0), (5000.0, 2000.0)])
def test_clipping_bounds_the_gradient_norm(clip, expected_norm):
    theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    cfg = TrainConfig(max_iter=1, lr=1.0, optimizer=_sgd, clip=clip)
    train(_Owner(), [theta], lambda step: 1000.0 * theta.sum(), cfg)  # |grad| = 2000
    # SGD with lr=1 moves theta by exactly the (clipped) gradient
    assert theta.detach().norm().item() == pytest.approx(expected_norm, rel=1e-5)


def test_non_finite_loss_stops_with_convergence_warning_and_no_per_step_sync():
    theta = torch.ones(2, requires_grad=True)

    def loss_fn(step):
        return (theta ** 2).sum() * (math.nan if step == 3 else 1.0)

    est = _Owner()
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        res = train(est, [theta], loss_fn, TrainConfig(max_iter=50, lr=1e-3, log_every=10))
    assert not res.converged
    # the loss is only read every log_every steps: the NaN at step 3 is seen at step 10
    assert res.n_iter == 10 and len(est.history_) == 1 and math.isnan(est.history_[0]["objective"])


def test_frozen_parameters_are_neither_trained_nor_averaged():
    net = torch.nn.Linear(3, 1)
    net.bias.requires_grad_(False)
    bias = net.bias.detach().clone()
    x = torch.ones(5, 3)
    train(_Owner(), net, lambda step: net(x).pow(2).mean(), TrainConfig(max_iter=5, lr=0.1, ema=0.9),
          validation=lambda: net(x).pow(2).mean())
    assert torch.equal(net.bias, bias)


def test_ema_swap_is_exact_and_copy_leaves_averages():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    avg = EMA([p], 0.5)
    with torch.no_grad():
        p.add_(1.0)
    avg.update(0)  # d = min(0.5, 1/10): shadow = 0.1 * old + 0.9 * new
    shadow = avg.shadow[0].clone()
    live = p.detach().clone()
    avg.swap()
    assert torch.equal(p, shadow) and torch.equal(avg.shadow[0], live)
    avg.swap()
    assert torch.equal(p, live)
    EMA([p], None).swap()  # no averaging: a no-op
    assert torch.equal(p, live)


def test_weighted_batches_are_repeated_rows_in_distribution():
    n_draws = 120_000
    w = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    rows = torch.tensor([1, 2, 2, 3, 3, 3])  # the same data with integer weights as repeated rows
    weighted = BatchSampler(4, n_draws, w, torch.Generator().manual_seed(0), torch.device("cpu"))()
    uniform = BatchSampler(6, 6, None, torch.Generator().manual_seed(1), torch.device("cpu"))
    repeated = rows[torch.cat([uniform() for _ in range(n_draws // 6)])]
    p = np.array([0, 1, 2, 3]) / 6.0
    sd = np.sqrt(p * (1 - p) / n_draws)
    for idx in (weighted, repeated):
        assert len(idx) == n_draws
        freq = np.bincount(idx.numpy(), minlength=4) / n_draws
        assert freq[0] == 0.0  # a zero weight drops its row
        assert np.all(np.abs(freq - p) <= 5 * sd + 1e-12), (freq, p)
    # (weighted batches keep batch_size even when it exceeds n; unweighted ones are capped at n)


def test_unweighted_batches_are_capped_at_n_rows():
    assert len(BatchSampler(10, 64, None, torch.Generator().manual_seed(0), torch.device("cpu"))()) == 10


def test_seeded_runs_are_reproducible_and_touch_no_global_rng():
    def run(seed):
        net, loss_fn = _problem(seed=seed)
        est = _Owner()
        train(est, net, loss_fn, TrainConfig(max_iter=25, lr=1e-2, ema=0.9, schedule="cosine", n_logs=5),
              validation=lambda: net(torch.ones(2, 3, dtype=torch.float64)).pow(2).mean())
        return [p.detach().clone() for p in net.parameters()], [h["objective"] for h in est.history_]

    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist() and random.getstate() == py_state
    assert all(torch.equal(x, y) for x, y in zip(a[0], b[0])) and a[1] == b[1]
    assert not torch.equal(a[0][0], c[0][0])


def test_validation_split_is_seeded_disjoint_and_stratified():
    tr, va = validation_split(50, 0.2, np.random.default_rng(0))
    assert len(va) == 10 and len(tr) == 40
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(50))
    tr2, va2 = validation_split(50, 0.2, np.random.default_rng(0))
    assert np.array_equal(va, va2) and not np.array_equal(va, validation_split(50, 0.2, 1)[1])
    y = np.repeat([0, 1], [40, 10])
    _, va = validation_split(50, 0.2, 0, stratify=y)
    assert np.bincount(y[va]).tolist() == [8, 2]
    assert len(validation_split(3, 0.01, 0)[1]) == 1 and len(validation_split(3, 0.99, 0)[0]) == 1
    with pytest.raises(ValueError, match="fraction"):
        validation_split(10, 1.0, 0)
    with pytest.raises(ValueError, match="at least 2"):
        validation_split(1, 0.5, 0)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_iter": 0}, "max_iter"),
    ({"lr": -1.0}, "lr"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"schedule": "step"}, "schedule"),
    ({"warmup": -1}, "warmup"),
    ({"patience": 0}, "patience"),
    ({"log_every": 0}, "log_every"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{"max_iter": 10, **kwargs})


def test_adamw_by_name_and_history_has_validation():
    net, loss_fn = _problem()
    est = _Owner()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = train(est, net, loss_fn, TrainConfig(max_iter=10, optimizer="adamw", log_every=5),
                    validation=lambda: torch.tensor(1.0))
    assert [set(h) for h in est.history_] == [{"iter", "objective", "val_objective", "time"}] * 2
    assert res.best_iter == 5 and res.best_validation == 1.0  # a tie is not an improvement


def test_validation_sees_the_ema_weights_and_does_not_perturb_training():
    def run(with_validation):
        net, loss_fn = _problem(seed=3)
        est = _Owner()
        probe = torch.ones(1, 3, dtype=torch.float64)
        val = (lambda: net(probe).sum()) if with_validation else None
        train(est, net, loss_fn, TrainConfig(max_iter=30, lr=1e-2, ema=0.8, n_logs=3,
                                             restore_best=False), validation=val)
        return net, est.history_, probe

    net_v, hist_v, probe = run(True)
    net_n, hist_n, _ = run(False)
    # swapping the averaged weights in and out for validation is exact: same run either way
    assert all(torch.equal(a, b) for a, b in zip(net_v.parameters(), net_n.parameters()))
    assert [h["objective"] for h in hist_v] == [h["objective"] for h in hist_n]
    # the last validation ran on the EMA weights, which are the ones left in the module
    with torch.no_grad():
        assert hist_v[-1]["val_objective"] == float(net_v(probe).sum())


def test_non_finite_loss_with_validation_falls_back_to_the_best_weights():
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)

    def loss_fn(step):  # heads for 2; at step 12 the loss (and so theta) becomes NaN
        return ((theta - 2.0) ** 2).sum() * (math.nan if step >= 12 else 1.0)

    cfg = TrainConfig(max_iter=40, lr=0.02, optimizer=_sgd, clip=None, log_every=5)
    with pytest.warns(ConvergenceWarning):
        res = train(_Owner(), [theta], loss_fn, cfg, validation=lambda: ((theta - 1.0) ** 2).sum())
    assert not res.converged and res.n_iter == 15 and res.best_iter == 10
    # theta after 5 / 10 steps is 0.37 / 0.67: validation improved at both, then NaN at 15
    assert theta.item() == pytest.approx(_trajectory(10, lr=0.02)[-1], abs=1e-12)
