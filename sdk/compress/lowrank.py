"""Low-rank factorization.

* ``svd`` (default): a conv k x k (C_in -> C_out) becomes a conv k x k with ``r`` filters followed by a 1x1
  conv (r -> C_out); a linear layer becomes two (in -> r -> out). The truncated SVD of the weight matrix
  ``[C_out, C_in*k*k]`` gives the best rank-r approximation (Eckart-Young).
* ``tucker2``: a conv k x k (k > 1) becomes 1x1 (C_in -> r_in), k x k (r_in -> r_out, the core), 1x1
  (r_out -> C_out): Tucker-2 of the weight tensor by HOSVD (leading singular vectors of the output- and
  input-channel unfoldings; not the optimal HOOI fit, the error is reported as measured). Linear and
  1x1 layers fall back to SVD.

    from sdk.compress.lowrank import factorize
    model, report = factorize(model, energy=0.9)     # or rank=8; report: layer -> rank, relative error
    model, report = factorize(model, rank=16, method="tucker2")
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from sdk.errors import ConfigError


def choose_rank(s: np.ndarray, rank: int | None, energy: float | None) -> int:
    """``rank`` (capped), or the smallest rank keeping ``energy`` of the squared singular values."""
    if rank is not None:
        return max(1, min(rank, len(s)))
    if energy is None or not 0 < energy <= 1:
        raise ConfigError("factorize needs rank=N or energy in (0, 1]")
    cum = np.cumsum(s.astype(np.float64) ** 2) / max(float((s.astype(np.float64) ** 2).sum()), 1e-30)
    return int(min(len(s), np.searchsorted(cum, energy - 1e-12) + 1))


def _split(m: Any, rank: int | None, energy: float | None) -> tuple[Any, dict[str, Any]] | None:
    import torch
    from torch import nn

    w = m.weight.detach().double()
    mat = w.reshape(w.shape[0], -1)
    u, s, vh = torch.linalg.svd(mat, full_matrices=False)
    r = choose_rank(s.numpy(), rank, energy)
    n_out, n_in = mat.shape
    if r * (n_in + n_out) >= n_out * n_in:
        return None  # no saving at this rank: keep the layer
    root = s[:r].sqrt()
    first, second = (vh[:r] * root[:, None]).float(), (u[:, :r] * root[None, :]).float()
    err = float(torch.linalg.norm(mat - (u[:, :r] * s[:r]) @ vh[:r]) / max(float(torch.linalg.norm(mat)), 1e-30))
    if isinstance(m, nn.Conv2d):
        a = nn.Conv2d(m.in_channels, r, m.kernel_size, m.stride, m.padding, m.dilation, bias=False)
        b = nn.Conv2d(r, m.out_channels, 1, bias=m.bias is not None)
        a.weight.data = first.reshape(r, *w.shape[1:]).contiguous()
        b.weight.data = second.reshape(m.out_channels, r, 1, 1).contiguous()
    else:
        a, b = nn.Linear(m.in_features, r, bias=False), nn.Linear(r, m.out_features, bias=m.bias is not None)
        a.weight.data, b.weight.data = first.contiguous(), second.contiguous()
    if m.bias is not None:
        b.bias.data = m.bias.detach().clone()
    return nn.Sequential(a, b), {"rank": r, "full_rank": min(n_out, n_in), "rel_error": err,
                                 "params_before": n_out * n_in, "params_after": r * (n_in + n_out)}


def _tucker2(m: Any, rank: int | None, energy: float | None) -> tuple[Any, dict[str, Any]] | None:
    """Tucker-2 (HOSVD) of a k x k conv: 1x1 -> k x k core -> 1x1 (None when it saves nothing)."""
    import torch
    from torch import nn

    w = m.weight.detach().double()  # [C_out, C_in, kh, kw]
    c_out, c_in = w.shape[:2]
    u_out, s_out, _ = torch.linalg.svd(w.reshape(c_out, -1), full_matrices=False)
    u_in, s_in, _ = torch.linalg.svd(w.transpose(0, 1).reshape(c_in, -1), full_matrices=False)
    r_out, r_in = choose_rank(s_out.numpy(), rank, energy), choose_rank(s_in.numpy(), rank, energy)
    u_out, u_in = u_out[:, :r_out], u_in[:, :r_in]
    core = torch.einsum("oihw,or,is->rshw", w, u_out, u_in)  # [r_out, r_in, kh, kw]
    approx = torch.einsum("rshw,or,is->oihw", core, u_out, u_in)
    k = w.shape[2] * w.shape[3]
    before, after = c_out * c_in * k, c_in * r_in + r_out * r_in * k + r_out * c_out
    if after >= before:
        return None
    a = nn.Conv2d(c_in, r_in, 1, bias=False)
    b = nn.Conv2d(r_in, r_out, m.kernel_size, m.stride, m.padding, m.dilation, bias=False)
    c = nn.Conv2d(r_out, c_out, 1, bias=m.bias is not None)
    a.weight.data = u_in.T.reshape(r_in, c_in, 1, 1).float().contiguous()
    b.weight.data = core.float().contiguous()
    c.weight.data = u_out.reshape(c_out, r_out, 1, 1).float().contiguous()
    if m.bias is not None:
        c.bias.data = m.bias.detach().clone()
    err = float(torch.linalg.norm(w - approx) / max(float(torch.linalg.norm(w)), 1e-30))
    return nn.Sequential(a, b, c), {"rank": [r_out, r_in], "full_rank": [int(c_out), int(c_in)], "rel_error": err,
                                    "params_before": before, "params_after": after, "method": "tucker2"}


def factorize(model: Any, rank: int | None = None, energy: float | None = None, *,
              layers: list[str] | None = None, method: str = "svd") -> tuple[Any, dict[str, dict[str, Any]]]:
    """A copy of ``model`` with every regular conv / linear layer (or those named in ``layers``) replaced by
    its rank-r factorization (``method`` "svd" or "tucker2") where that saves parameters. The report gives
    each layer's rank(s) and the relative Frobenius error of its weight, ``||W - W_r|| / ||W||``."""
    from torch import nn

    if method not in ("svd", "tucker2"):
        raise ConfigError(f"factorize: method must be 'svd' or 'tucker2', not {method!r}")

    model = copy.deepcopy(model)
    report: dict[str, dict[str, Any]] = {}
    for name, m in list(model.named_modules()):
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or (isinstance(m, nn.Conv2d) and m.groups != 1):
            continue
        if layers is not None and name not in layers:
            continue
        spatial = isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)
        out = _tucker2(m, rank, energy) if method == "tucker2" and spatial else _split(m, rank, energy)
        if out is None:
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, out[0])
        report[name] = out[1]
    return model, report
