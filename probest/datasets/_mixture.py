"""make_federated_gmm: a federation of clients sharing Gaussian components."""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch


def make_federated_gmm(
    n_clients: int = 10,
    n_samples: int | list[int] = 500,
    n_components: int = 3,
    n_features: int = 4,
    *,
    concentration: float = 1.0,
    separation: float = 6.0,
    covariance_scale: float = 1.0,
    labels: bool = False,
    n_classes: int = 2,
    label_noise: float = 0.0,
    label_scale: float = 4.0,
    random_state=None,
) -> Bunch:
    """Clients drawing from shared Gaussian components with their own mixing weights.

    Component means are ``separation`` times standard normal draws; covariances are
    ``covariance_scale`` times a random SPD matrix with eigenvalues in [0.5, 1.5]; client
    weights are Dirichlet(``concentration``) draws (small values = very different clients).

    With ``labels=True`` each component ``a`` has its own multinomial-logistic labelling
    model ``p(y | x, a) = softmax(label_scale * W_a (x - mu_a) / ||.||)`` (random
    unit-norm rows ``W_a``), and each label is replaced by a uniform random class with
    probability ``label_noise``.  A single global linear classifier cannot fit all
    components at once, which makes this the covariate-shift federation of FedGMM.

    Parameters
    ----------
    n_clients : int, default=10
        Number of clients.
    n_samples : int or list of int, default=500
        Rows per client (one int for all, or one entry per client).
    n_components : int, default=3
        Number ``K`` of shared Gaussian components.
    n_features : int, default=4
        Dimension ``d``.
    concentration : float, default=1.0
        Dirichlet concentration of the client weights.
    separation : float, default=6.0
        Scale of the component means.
    covariance_scale : float, default=1.0
        Scale of the component covariances.
    labels : bool, default=False
        Also draw labels from per-component logistic models.
    n_classes : int, default=2
        Number of classes when ``labels=True``.
    label_noise : float, default=0.0
        Probability in [0, 1] of replacing a label by a uniform random class.
    label_scale : float, default=4.0
        Inverse temperature of the labelling models.
    random_state : None, int or numpy Generator, default=None
        Seed of the draw.

    Returns
    -------
    sklearn.utils.Bunch
        ``X`` (list of ``(n_c, d)`` arrays), ``y`` (list of label arrays, or None),
        ``components`` (list of component indices), ``weights`` ``(n_clients, K)``,
        ``means`` ``(K, d)``, ``covariances`` ``(K, d, d)`` and, with labels, ``label_coef``
        ``(K, n_classes, d)`` (else None).

    Examples
    --------
    >>> from probest.datasets import make_federated_gmm
    >>> fed = make_federated_gmm(n_clients=3, n_samples=50, n_components=2, n_features=2,
    ...                          random_state=0)
    >>> len(fed.X), fed.X[0].shape, fed.weights.shape
    (3, (50, 2), (3, 2))
    >>> fed = make_federated_gmm(n_clients=3, n_samples=50, n_components=2, n_features=2,
    ...                          labels=True, random_state=0)
    >>> fed.y[0].shape, fed.label_coef.shape
    ((50,), (2, 2, 2))
    """
    if n_clients < 1 or n_components < 1 or n_features < 1:
        raise ValueError("n_clients, n_components and n_features must be positive integers.")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}.")
    rng = np.random.default_rng(random_state)
    K, d = n_components, n_features
    sizes = [int(n_samples)] * n_clients if np.isscalar(n_samples) else [int(s) for s in n_samples]
    if len(sizes) != n_clients:
        raise ValueError(f"n_samples has {len(sizes)} entries for {n_clients} clients.")
    means = separation * rng.normal(size=(K, d))
    covs = np.empty((K, d, d))
    for k in range(K):
        Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        covs[k] = covariance_scale * (Q * rng.uniform(0.5, 1.5, size=d)) @ Q.T
    chols = np.linalg.cholesky(covs)
    weights = rng.dirichlet(np.full(K, concentration), size=n_clients)
    coef = None
    if labels:
        coef = rng.normal(size=(K, n_classes, d))
        coef /= np.linalg.norm(coef, axis=2, keepdims=True)
    Xs, ys, zs = [], [], []
    for c, n in enumerate(sizes):
        z = rng.choice(K, size=n, p=weights[c])
        X = means[z] + np.einsum("nij,nj->ni", chols[z], rng.normal(size=(n, d)))
        Xs.append(X)
        zs.append(z)
        if labels:
            logits = label_scale * np.einsum("nkd,nd->nk", coef[z], X - means[z])
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(1, keepdims=True)
            y = (rng.uniform(size=(n, 1)) > np.cumsum(p, 1)).sum(1)
            y = np.minimum(y, n_classes - 1)
            flip = rng.uniform(size=n) < label_noise
            y[flip] = rng.integers(0, n_classes, size=int(flip.sum()))
            ys.append(y)
    return Bunch(X=Xs, y=ys if labels else None, components=zs, weights=weights, means=means,
                 covariances=covs, label_coef=coef)
