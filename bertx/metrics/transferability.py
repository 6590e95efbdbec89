"""Transferability estimators: how well will an encoder's frozen features serve a task, without training it.

Each takes features `f` (n x d, one row per example) and targets `y` (n class ids, or n real values) and
returns one number, larger = better:

    logme   the evidence of a Bayesian linear model of the targets on the features, maximised over its
            prior and noise precisions (You et al., ICML 2021), per example, averaged over the classes'
            one-hot columns (or of the single real-valued target)
    hscore  tr(cov(f)^-1 cov(E[f | y])): how far the class means spread relative to the features'
            spread (Bao et al., 2019); classes only
    knn     leave-one-out accuracy of a cosine k-nearest-neighbour vote (regression: Pearson of the
            neighbours' mean)
    probe   accuracy of a logistic regression on a held-out fifth (regression: ridge, Pearson)

Pure numpy/scikit-learn: no model is touched here.
"""

from __future__ import annotations

import math

import numpy as np

ESTIMATORS = ("logme", "hscore", "knn", "probe")


def logme_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | f, alpha, beta) of y = f w + noise, w ~ N(0, 1/alpha), noise ~ N(0, 1/beta), in closed form
    (the quantity LogME maximises; the tests check it against the Gaussian density it stands for)."""
    n, d = f.shape
    a = beta * f.T @ f + alpha * np.eye(d)
    m = beta * np.linalg.solve(a, f.T @ y)  # posterior mean of w
    residual = float(((f @ m - y) ** 2).sum())
    return (
        d / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - alpha / 2 * float(m @ m)
        - beta / 2 * residual
        - 0.5 * float(np.linalg.slogdet(a)[1])
        - n / 2 * math.log(2 * math.pi)
    )


def _logme_one(u: np.ndarray, sigma_full: np.ndarray, y: np.ndarray, n: int, d: int, iterations: int = 100) -> float:
    """Maximised log evidence per example of one target column (the fixed-point updates of You et al.)."""
    k = u.shape[1]
    sigma = sigma_full[:k]
    x2 = (u.T @ y) ** 2
    outside = max(float(y @ y - x2.sum()), 0.0)  # the part of y the features cannot span
    alpha, beta = 1.0, 1.0
    for _ in range(iterations):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + outside
        new_alpha, new_beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
        done = abs(new_alpha / new_beta - t) / t < 1e-4
        alpha, beta = new_alpha, new_beta
        if done:
            break
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + outside
    evidence = (
        d / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - alpha / 2 * m2
        - beta / 2 * res2
        - 0.5 * float(np.log(alpha + beta * sigma_full).sum())
        - n / 2 * math.log(2 * math.pi)
    )
    return evidence / n


def logme(f: np.ndarray, y: np.ndarray, regression: bool = False) -> float:
    f = np.asarray(f, dtype=np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma_full = np.zeros(d)
    sigma_full[: s.size] = s**2
    if regression:
        target = np.asarray(y, dtype=np.float64)
        return _logme_one(u, sigma_full, (target - target.mean()) / (target.std() + 1e-12), n, d)
    labels = np.asarray(y)
    return float(np.mean([_logme_one(u, sigma_full, (labels == c).astype(np.float64), n, d) for c in np.unique(labels)]))


def hscore(f: np.ndarray, y: np.ndarray, shrinkage: float = 1e-3) -> float:
    f = np.asarray(f, dtype=np.float64)
    f = f - f.mean(0)
    cov = f.T @ f / len(f)
    cov += shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])  # a rank-deficient covariance stays invertible
    labels = np.asarray(y)
    means = np.zeros_like(f)
    for c in np.unique(labels):
        means[labels == c] = f[labels == c].mean(0)
    between = means.T @ means / len(f)
    return float(np.trace(np.linalg.solve(cov, between)))


def knn(f: np.ndarray, y: np.ndarray, regression: bool = False, k: int = 5, chunk: int = 2048) -> float:
    f = np.asarray(f, dtype=np.float32)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    k = min(k, len(f) - 1)
    neighbours = np.zeros((len(f), k), dtype=np.int64)
    for begin in range(0, len(f), chunk):  # row blocks: 20,000 NER words would need 3 GB at once
        similarity = f[begin : begin + chunk] @ f.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, rows + begin] = -np.inf  # leave one out: never one's own neighbour
        neighbours[begin : begin + chunk] = np.argpartition(-similarity, k, axis=1)[:, :k]
    target = np.asarray(y)
    if regression:
        return _pearson(target[neighbours].astype(np.float64).mean(1), target.astype(np.float64))
    votes = [np.bincount(row, minlength=int(target.max()) + 1) for row in target[neighbours]]
    return float(np.mean([int(np.argmax(v)) == t for v, t in zip(votes, target)]))


def probe(f: np.ndarray, y: np.ndarray, regression: bool = False, seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split

    stratify = None if regression else np.asarray(y)
    a, b, ya, yb = train_test_split(np.asarray(f), np.asarray(y), test_size=0.2, random_state=seed, stratify=stratify)
    if regression:
        return _pearson(Ridge(alpha=1.0).fit(a, ya).predict(b), yb)
    return float(LogisticRegression(max_iter=2000, random_state=seed).fit(a, ya).score(b, yb))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def estimate(name: str, f: np.ndarray, y: np.ndarray, regression: bool, seed: int = 0) -> float | None:
    """One estimator by name; None where it does not apply (H-score of real-valued targets)."""
    if name == "logme":
        return logme(f, y, regression)
    if name == "hscore":
        return None if regression else hscore(f, y)
    if name == "knn":
        return knn(f, y, regression)
    if name == "probe":
        return probe(f, y, regression, seed)
    raise ValueError(name)


def kendall_tau(predicted: dict[str, float], measured: dict[str, float]) -> float | None:
    """Kendall's tau-b between two scorings of the same candidates (None with fewer than two, or no spread)."""
    from scipy.stats import kendalltau

    names = [n for n in measured if predicted.get(n) is not None]
    if len(names) < 2:
        return None
    tau = kendalltau([predicted[n] for n in names], [measured[n] for n in names]).statistic
    return None if math.isnan(tau) else float(tau)


def regret(predicted: dict[str, float], measured: dict[str, float]) -> float:
    """What picking the top-scored candidate costs: the best measured value minus the picked one's."""
    names = [n for n in measured if predicted.get(n) is not None]
    picked = max(names, key=lambda n: predicted[n])
    return float(max(measured[n] for n in names) - measured[picked])


def agreement(predicted: dict[str, dict[str, float]], measured: dict[str, dict[str, float]]) -> dict:
    """Per target (and on average): Kendall's tau and top-1 regret of `predicted[target][candidate]` against
    `measured[target][candidate]` (gains or scores, in points)."""
    # A target the estimator cannot score (H-score of a regression target) is left out and listed.
    scored = [t for t in measured if any(predicted[t].get(n) is not None for n in measured[t])]
    per = {
        t: {
            "tau": kendall_tau(predicted[t], measured[t]),
            "regret": regret(predicted[t], measured[t]),
            "picked": max((n for n in measured[t] if predicted[t].get(n) is not None), key=lambda n: predicted[t][n]),
            "best": max(measured[t], key=measured[t].get),
        }
        for t in scored
    }
    taus = [v["tau"] for v in per.values() if v["tau"] is not None]
    return {
        "targets": per,
        "mean_tau": float(np.mean(taus)) if taus else None,
        "mean_regret": float(np.mean([v["regret"] for v in per.values()])) if per else None,
        "not_scored": [t for t in measured if t not in scored],
    }
