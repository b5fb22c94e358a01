"""probest._torch and probest.base: devices, dtypes, seeding, progress, pickling."""

import pickle
import random

import numpy as np
import pytest
import torch

from probest._torch import as_tensor, draw_seed, move_to, resolve_device, resolve_dtype, seeded
from probest.base import Progress, TorchEstimator
from probest.testing import assert_rng_untouched


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    "spec,expected",
    [("float32", torch.float32), (np.float64, torch.float64), (torch.float32, torch.float32)],
)
def test_resolve_dtype(spec, expected):
    assert resolve_dtype(spec) == expected


def test_resolve_dtype_rejects_ints():
    with pytest.raises(ValueError, match="floating"):
        resolve_dtype("int64")


def test_as_tensor_copies_read_only_arrays_without_warning():
    a = np.arange(6.0).reshape(2, 3)
    a.setflags(write=False)
    t = as_tensor(a)
    t[0, 0] = 10.0
    assert a[0, 0] == 0.0 and t.dtype == torch.float64


def test_draw_seed_is_deterministic_for_ints_and_leaves_global_state():
    with assert_rng_untouched():
        assert draw_seed(3) == draw_seed(3) != draw_seed(4)
        assert draw_seed(None) != draw_seed(None)
        rs = np.random.RandomState(0)
        assert draw_seed(rs) != draw_seed(rs)  # the user's own RNG advances
    with pytest.raises(ValueError, match="random_state"):
        draw_seed("seed")
    with pytest.raises(ValueError, match="non-negative"):
        draw_seed(-1)


def test_seeded_restores_torch_state_and_is_reproducible():
    before = torch.get_rng_state().clone()
    with seeded(5) as g:
        a = torch.randn(3)
        b = torch.randn(3, generator=g)
    assert torch.equal(before, torch.get_rng_state())
    with seeded(5) as g:
        assert torch.equal(a, torch.randn(3))
        assert torch.equal(b, torch.randn(3, generator=g))


def test_move_to_does_not_mutate_modules():
    m = torch.nn.Linear(2, 2)
    assert move_to(m, "cpu") is m
    d = move_to({"a": [torch.ones(2)], "b": (torch.zeros(1), 3)}, "cpu")
    assert torch.equal(d["a"][0], torch.ones(2)) and d["b"][1] == 3


class _Toy(TorchEstimator):
    def __init__(self, *, device="cpu", dtype="float64", random_state=None, verbose=0, n=3):
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.n = n

    def fit(self, X=None, y=None):
        with self._fit_context() as ctx, self._progress(self.n, "toy") as prog:
            self.w_ = torch.randn(4, device=self.device_, dtype=self.dtype_)
            self.v_ = torch.randn(4, generator=ctx.generator, device=self.device_, dtype=self.dtype_)
            self.u_ = ctx.rng.normal(size=2)
            for i in range(self.n):
                prog.log(objective=torch.tensor(float(i)), extra=np.float64(i))
            self.module_ = torch.nn.Linear(2, 1).to(self.device_, self.dtype_)
        return self


def test_fit_context_seeds_and_restores():
    py, npst, tst = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a, b = _Toy(random_state=1).fit(), _Toy(random_state=1).fit()
    assert torch.equal(a.w_, b.w_) and torch.equal(a.v_, b.v_) and np.array_equal(a.u_, b.u_)
    assert not torch.equal(a.w_, _Toy(random_state=2).fit().w_)
    assert random.getstate() == py and np.array_equal(np.random.get_state()[1], npst)
    assert torch.equal(torch.get_rng_state(), tst)
    assert a.dtype_ == torch.float64 and a.device_ == torch.device("cpu")


def test_fit_context_keeps_pyro_param_store_empty():
    import pyro
    from pyro.nn import PyroModule, PyroParam

    # module_local_params=True is active inside fit: PyroModules keep their parameters.

    class _M(_Toy):
        def fit(self, X=None, y=None):
            with self._fit_context():
                m = PyroModule()
                m.loc = PyroParam(torch.zeros(2))
                _ = m.loc
            return self

    pyro.clear_param_store()
    _M().fit()
    assert not list(pyro.get_param_store().keys())


def test_progress_history_and_verbose_output(capsys):
    est = _Toy(verbose=2, n=4).fit()
    assert [h["iter"] for h in est.history_] == [1, 2, 3, 4]
    assert est.history_[-1]["objective"] == 3.0 and isinstance(est.history_[-1]["extra"], float)
    assert "objective=3" in capsys.readouterr().err
    quiet = _Toy(verbose=0, n=2).fit()
    assert len(quiet.history_) == 2 and capsys.readouterr().err == ""


def test_progress_standalone():
    hist = []
    with Progress(hist, total=2, desc="x", verbose=0) as p:
        p.log(step=10, loss=1.5)
    assert hist[0]["iter"] == 10 and hist[0]["loss"] == 1.5


def test_pickle_round_trip_and_to():
    est = _Toy(random_state=0).fit()
    back = pickle.loads(pickle.dumps(est))
    assert torch.equal(back.w_, est.w_) and back.device_ == torch.device("cpu")
    assert torch.equal(back.module_.weight, est.module_.weight)
    assert est.to("cpu") is est


def test_base_hooks_raise_clear_errors():
    est = _Toy()
    with pytest.raises(NotImplementedError, match="no Pyro form"):
        est.to_pyro()
    with pytest.raises(NotImplementedError, match="no posterior"):
        est.to_arviz()
