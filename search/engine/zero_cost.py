"""Zero-cost proxies: score an untrained network from one batch, no training.

Each proxy is ``score(model, images, labels) -> float`` (higher = predicted more accurate) on a
freshly initialised network; the caller seeds the initialisation (``score_spec`` does it). The
model is scored on a private copy, so the caller's module is left as it was. A score that cannot
be computed (NaN/inf gradients, a singular Jacobian) is NaN, which ranks last.

    synflow    Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
               conserving synaptic flow" (NeurIPS); as a NAS proxy: Abdelfattah et al. 2021,
               "Zero-Cost Proxies for Lightweight NAS" (ICLR).
               Measures: how much signal the architecture can pass at all: sum |theta * dR/dtheta|
               of the linearised network (|weights|, all-ones input, no data, no labels).
    jacob_cov  Mellor et al. 2021, "Neural Architecture Search without Training" (ICML, v1 score).
               Measures: how differently the network treats different images at init: the
               log-determinant-like spread of the correlation matrix of input Jacobians.
    snip       Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection
               Sensitivity" (ICLR); summed over weights as in Abdelfattah et al. 2021.
               Measures: how much the loss would change if the weights were removed, sum |theta * g|.
    grad_norm  Abdelfattah et al. 2021 (the baseline proxy of that paper).
               Measures: how strongly the first gradient step would move the weights, sum of the
               per-tensor L2 norms of the loss gradient.
    vote       Abdelfattah et al. 2021: a vote of synflow, jacob_cov and snip; here the mean of
               the three ranks over a population (``vote_scores``), so it needs several candidates.

On the anchors: on NAS-Bench-201 / CIFAR-10 Abdelfattah et al. report Spearman 0.74 (synflow),
0.73 (jacob_cov), 0.64 (snip), 0.64 (grad_norm) and 0.82 for the vote; ours are measured by
``benchmarks/proxy_fidelity.py --zero-cost`` on our own spaces (BENCHMARKS.md).

Weights scored (snip, grad_norm, synflow): every parameter with two or more dimensions (conv and
linear weights, whatever module holds them); BN affine parameters and biases are left out, as the
papers' "param" mode does. Dropout is turned off so that a score is a function of (architecture,
initial weights, batch) only; BN runs in training mode (batch statistics) for the gradient-based
proxies, as in the papers' code, and is an identity for synflow (eval mode with fresh statistics).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from blocks import build_model
from space.spec import ArchSpec

__all__ = [
    "ZERO_COST_PROXIES",
    "VOTE_MEMBERS",
    "ZeroCostProxy",
    "get_proxy",
    "grad_norm",
    "jacob_cov",
    "proxy_names",
    "rank",
    "score_batch",
    "score_spec",
    "snip",
    "synflow",
    "vote_scores",
]

ScoreFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


def _weights(model: nn.Module) -> list[nn.Parameter]:
    """Conv and linear weights (every parameter of rank >= 2), in module order."""
    return [p for p in model.parameters() if p.dim() >= 2]


def _without_dropout(model: nn.Module) -> nn.Module:
    """A copy in training mode (BN uses batch statistics) with every dropout switched off."""
    model = copy.deepcopy(model)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    return model


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.nan


# ----------------------------------------------------------------------------- the proxies


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """log of sum |theta * dR/dtheta|, R = sum of the outputs of the linearised network.

    Linearised as Tanaka et al. do: every weight replaced by its absolute value, an all-ones input
    of the images' shape (batch 1), BN off. Bounded activations would cap the all-positive signal
    (ReLU6 stops at 6, hard-swish bends), so ReLU6 and hard-swish become ReLU, which on positive
    inputs is the identity the linearisation assumes. Computed in float64 and returned as a
    natural log (the raw sum spans hundreds of orders of magnitude across depths; ranks are
    unchanged). Uses neither the pixel values nor the labels.
    """
    net = copy.deepcopy(model).double().eval()  # eval: BN with fresh running stats is an identity
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.ReLU6, nn.Hardswish)):
                setattr(module, child_name, nn.ReLU())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    net(ones).sum().backward()
    total = 0.0
    for p in _weights(net):
        if p.grad is not None:
            total += float((p.detach() * p.grad).abs().sum())
    return math.log(total) if total > 0 and math.isfinite(total) else math.nan


def jacob_cov(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """Mellor et al.'s v1 score: -sum(log(l + k) + 1/(l + k)) over the eigenvalues l of the
    correlation matrix of the per-image input Jacobians (of the summed logits), k = 1e-5.

    High when the Jacobians of different images are uncorrelated (the network tells them apart
    already at init). Needs a batch of >= 2 images.
    """
    if images.shape[0] < 2:
        raise ValueError(f"jacob_cov needs a batch of at least 2 images, got {images.shape[0]}")
    net = _without_dropout(model)
    x = images.detach().clone().float().requires_grad_(True)
    out = net(x)
    (jac,) = torch.autograd.grad(out.sum(), x)
    jac = jac.reshape(jac.shape[0], -1).double()
    if not torch.isfinite(jac).all():
        return math.nan
    corr = torch.corrcoef(jac)
    if not torch.isfinite(corr).all():
        return math.nan  # an image whose Jacobian is constant (e.g. all zero)
    eig = torch.linalg.eigvalsh(corr)
    k = 1e-5
    return _finite(float(-(torch.log(eig + k) + 1.0 / (eig + k)).sum()))


def _loss_grads(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, d cross-entropy / d weight) of every scored weight, one forward/backward."""
    net = _without_dropout(model)
    net.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(images.float()), labels)
    loss.backward()
    return [(p.detach(), p.grad.detach()) for p in _weights(net) if p.grad is not None]


def _snip_from(grads: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    return _finite(sum(float((w * g).abs().sum()) for w, g in grads))


def _grad_norm_from(grads: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    return _finite(sum(float(g.norm()) for _, g in grads))


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """sum |theta * dL/dtheta| over conv and linear weights (connection sensitivity)."""
    return _snip_from(_loss_grads(model, images, labels))


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """sum over conv and linear weights of ||dL/dtheta||_2."""
    return _grad_norm_from(_loss_grads(model, images, labels))


# snip and grad_norm read the same gradients: ``score_spec`` computes them once for both.
_FROM_LOSS_GRADS = {"snip": _snip_from, "grad_norm": _grad_norm_from}


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ZeroCostProxy:
    name: str
    score: ScoreFn | None  # None: a population-level combination (vote)
    citation: str
    measures: str


ZERO_COST_PROXIES: dict[str, ZeroCostProxy] = {
    p.name: p
    for p in (
        ZeroCostProxy("synflow", synflow, "Tanaka et al. 2020 (NeurIPS); Abdelfattah et al. 2021 (ICLR)",
                      "signal the linearised network passes: sum |theta * dR/dtheta|, data-free"),
        ZeroCostProxy("jacob_cov", jacob_cov, "Mellor et al. 2021 (ICML), v1 score",
                      "how decorrelated the input Jacobians of different images are at init"),
        ZeroCostProxy("snip", snip, "Lee et al. 2019 (ICLR); Abdelfattah et al. 2021 (ICLR)",
                      "loss sensitivity to removing the weights: sum |theta * dL/dtheta|"),
        ZeroCostProxy("grad_norm", grad_norm, "Abdelfattah et al. 2021 (ICLR)",
                      "size of the first gradient step: sum of per-tensor ||dL/dtheta||"),
        ZeroCostProxy("vote", None, "Abdelfattah et al. 2021 (ICLR)",
                      "mean rank of synflow, jacob_cov and snip over the candidates"),
    )
}
VOTE_MEMBERS = ("synflow", "jacob_cov", "snip")


def proxy_names() -> tuple[str, ...]:
    return tuple(ZERO_COST_PROXIES)


def get_proxy(name: str) -> ZeroCostProxy:
    try:
        return ZERO_COST_PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown zero-cost proxy {name!r}; valid: {', '.join(ZERO_COST_PROXIES)}") from None


def members(name: str) -> tuple[str, ...]:
    """The single proxies that ``name`` needs computed per network."""
    get_proxy(name)
    return VOTE_MEMBERS if name == "vote" else (name,)


# ----------------------------------------------------------------------------- ranks and vote


def rank(values: Sequence[float]) -> list[float]:
    """Ranks 0 .. n-1, higher value = higher rank; ties share their mean rank; NaN ranks lowest."""
    # Imported here: scipy.stats took 4 s of every command's start-up on a loaded 2-core machine
    # (benchmarks/info_speed.py), and only the vote pre-screen ranks anything.
    from scipy.stats import rankdata

    keyed = [v if math.isfinite(v) else -math.inf for v in values]
    return [float(r) - 1.0 for r in rankdata(keyed, method="average")] if keyed else []


def vote_scores(rows: Sequence[dict[str, float]], names: Sequence[str] = VOTE_MEMBERS) -> list[float]:
    """The vote of ``names`` over a population: each candidate's mean rank (higher = better)."""
    if not rows:
        return []
    per_proxy = [rank([r[n] for r in rows]) for n in names]
    return [sum(col) / len(names) for col in zip(*per_proxy)]


def population_scores(name: str, rows: Sequence[dict[str, float]]) -> list[float]:
    """Scores of ``name`` for a population whose member scores are in ``rows``."""
    return vote_scores(rows) if name == "vote" else [r[name] for r in rows]


# ----------------------------------------------------------------------------- scoring specs


def score_batch(images: torch.Tensor, labels: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of ``size`` images drawn by ``seed``, as float in [0, 1]-normalised units.

    uint8 images (the resident data sets) are scaled to [0, 1] and standardised per channel over
    the batch; float images are used as they are.
    """
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to score with")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)[: min(size, n)].to(images.device)
    x, y = images[idx], labels[idx]
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        x = (x - mean) / std
    return x.float(), y.long()


def score_spec(
    names: Sequence[str],
    spec: ArchSpec,
    num_classes: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int,
) -> dict[str, float]:
    """Build ``spec`` with initial weights drawn from ``seed`` and score it with each single proxy
    of ``names`` (vote members expanded). Same arguments, same scores."""

    wanted: list[str] = []
    for name in names:
        wanted += [m for m in members(name) if m not in wanted]
    torch.manual_seed(seed)
    model = build_model(spec, num_classes).to(images.device)
    out: dict[str, float] = {}
    grads = None
    for name in wanted:
        torch.manual_seed(seed)
        try:
            if name in _FROM_LOSS_GRADS:
                grads = grads if grads is not None else _loss_grads(model, images, labels)
                out[name] = _FROM_LOSS_GRADS[name](grads)
            else:
                out[name] = get_proxy(name).score(model, images, labels)
        except RuntimeError:  # e.g. out of memory: the candidate ranks last, the search goes on
            out[name] = math.nan
    return out
