"""UniPC (Zhao et al. 2023, arXiv:2302.04867) as A1111 runs it (``modules/models/diffusion/uni_pc``).

A1111's defaults: variant bh1, skip type time_uniform, order 3, lower order final, data
prediction without thresholding, multistep. The model is A1111's discrete VP schedule: continuous
t in [1/N, 1] maps to the model timestep (t - 1/N) * 1000 and log(alpha_t) is interpolated
piecewise-linearly in t over the training ``alphas_cumprod``. ``steps`` is the length of A1111's
DDPM grid (so 15 or 30 steps run 16 or 31 UniPC steps, as there); an img2img pass starts at
``t_start = timesteps[-1] / 1000 + 1 / 1000``.

Each step: 1. predictor to t_i from the last ``order`` data predictions; 2. evaluate the model at
the new point; 3. corrector with that evaluation (skipped at the last step, which needs none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import StepCallback, report

if TYPE_CHECKING:
    import torch

VARIANTS = ("bh1", "bh2", "vary_coeff")
SKIP_TYPES = ("time_uniform", "time_quadratic", "logSNR")


def interpolate(x: torch.Tensor, xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear y(x) through keypoints (xp, yp), extended linearly beyond the ends; x is
    [N, 1], xp and yp [1, K]. Implemented by sorting x into the keypoints, as DPM-Solver does."""
    import torch

    n, k = x.shape[0], xp.shape[1]
    all_x = torch.cat([x.unsqueeze(2), xp.unsqueeze(0).repeat((n, 1, 1))], dim=2)
    sorted_all_x, x_indices = torch.sort(all_x, dim=2)
    x_idx = torch.argmin(x_indices, dim=2)
    cand_start_idx = x_idx - 1
    one, last = torch.tensor(1, device=x.device), torch.tensor(k - 2, device=x.device)
    start_idx = torch.where(torch.eq(x_idx, 0), one, torch.where(torch.eq(x_idx, k), last, cand_start_idx))
    end_idx = torch.where(torch.eq(start_idx, cand_start_idx), start_idx + 2, start_idx + 1)
    start_x = torch.gather(sorted_all_x, dim=2, index=start_idx.unsqueeze(2)).squeeze(2)
    end_x = torch.gather(sorted_all_x, dim=2, index=end_idx.unsqueeze(2)).squeeze(2)
    zero = torch.tensor(0, device=x.device)
    start_idx2 = torch.where(torch.eq(x_idx, 0), zero, torch.where(torch.eq(x_idx, k), last, cand_start_idx))
    y_expanded = yp.unsqueeze(0).expand(n, -1, -1)
    start_y = torch.gather(y_expanded, dim=2, index=start_idx2.unsqueeze(2)).squeeze(2)
    end_y = torch.gather(y_expanded, dim=2, index=(start_idx2 + 1).unsqueeze(2)).squeeze(2)
    return start_y + (x - start_x) * (end_y - start_y) / (end_x - start_x)


def _expand(v: torch.Tensor, dims: int) -> torch.Tensor:
    return v[(...,) + (None,) * (dims - 1)]


class DiscreteVPSchedule:
    """alpha_t, sigma_t and lambda_t = log(alpha_t / sigma_t) of a discrete-time model."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        import torch

        log_alphas = 0.5 * torch.log(alphas_cumprod)
        self.total_n = len(log_alphas)
        self.t_array = torch.linspace(0.0, 1.0, self.total_n + 1)[1:].reshape((1, -1))
        self.log_alpha_array = log_alphas.reshape((1, -1))
        # A step asks for log(alpha_t) of the same few t values many times; each answer costs a
        # sort of 1001 keypoints. The same t gives the same bits, so remembering them is exact.
        self._cache: dict[tuple[str, tuple[float, ...]], torch.Tensor] = {}

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        key = (str(t.device), tuple(t.reshape(-1).tolist()))
        cached = self._cache.get(key)
        if cached is None:
            t_array, log_alpha = self.t_array.to(t.device), self.log_alpha_array.to(t.device)
            cached = interpolate(t.reshape((-1, 1)), t_array, log_alpha).reshape(-1)
            self._cache[key] = cached
        return cached

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.exp(self.log_mean_coeff(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_mean_coeff(t)))

    def lambda_(self, t: torch.Tensor) -> torch.Tensor:
        import torch

        log_mean = self.log_mean_coeff(t)
        return log_mean - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean))

    def inverse_lambda(self, lamb: torch.Tensor) -> torch.Tensor:
        import torch

        log_alpha = -0.5 * torch.logaddexp(torch.zeros((1,)).to(lamb.device), -2.0 * lamb)
        flipped_alpha = torch.flip(self.log_alpha_array.to(lamb.device), [1])
        flipped_t = torch.flip(self.t_array.to(lamb.device), [1])
        return interpolate(log_alpha.reshape((-1, 1)), flipped_alpha, flipped_t).reshape((-1,))


class UniPC:
    """UniPC with data prediction; ``eps_model(x, t_model)`` is the CFG denoiser on eps."""

    def __init__(self, eps_model: Any, schedule: DiscreteVPSchedule, variant: str = "bh1") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"UniPC variant {variant!r} unknown; choose one of {', '.join(VARIANTS)}")
        self.eps_model = eps_model
        self.ns = schedule
        self.variant = variant

    def data_prediction(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.eps_model(x, (t - 1.0 / self.ns.total_n) * 1000.0)
        dims = x.dim()
        x0: torch.Tensor = (x - _expand(self.ns.std(t), dims) * eps) / _expand(self.ns.alpha(t), dims)
        return x0

    def time_steps(self, skip_type: str, t_T: Any, t_0: float, n: int, device: Any) -> torch.Tensor:
        import torch

        if skip_type == "logSNR":
            lambda_T = self.ns.lambda_(torch.as_tensor(t_T).to(device).reshape(-1))
            lambda_0 = self.ns.lambda_(torch.as_tensor(t_0).to(device).reshape(-1))
            steps = torch.linspace(lambda_T.cpu().item(), lambda_0.cpu().item(), n + 1).to(device)
            return self.ns.inverse_lambda(steps)
        if skip_type == "time_uniform":
            return torch.linspace(t_T, t_0, n + 1).to(device)
        if skip_type == "time_quadratic":
            return torch.linspace(t_T ** (1.0 / 2), t_0 ** (1.0 / 2), n + 1).pow(2).to(device)
        raise ValueError(f"UniPC skip type {skip_type!r} unknown; choose one of {', '.join(SKIP_TYPES)}")

    def _common(
        self, model_prev: list[Any], t_prev: list[Any], t: torch.Tensor, order: int
    ) -> dict[str, Any]:
        import torch

        ns = self.ns
        lambda_prev_0 = ns.lambda_(t_prev[-1])
        h = ns.lambda_(t) - lambda_prev_0
        rks: list[Any] = []
        d1s: list[torch.Tensor] = []
        for i in range(1, order):
            rk = ((ns.lambda_(t_prev[-(i + 1)]) - lambda_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev[-(i + 1)] - model_prev[-1]) / rk)
        rks.append(1.0)
        return {
            "h": h,
            "rks": torch.tensor(rks, device=t.device),
            "d1s": d1s,
            "sigma_ratio": ns.std(t) / ns.std(t_prev[-1]),
            "alpha_t": torch.exp(ns.log_mean_coeff(t)),
        }

    def update_bh(
        self,
        x: torch.Tensor,
        model_prev: list[Any],
        t_prev: list[Any],
        t: torch.Tensor,
        order: int,
        use_corrector: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch

        dims = x.dim()
        c = self._common(model_prev, t_prev, t, order)
        rks, alpha_t = c["rks"], c["alpha_t"]
        hh = -c["h"][0]
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial_i = 1
        b_h = hh if self.variant == "bh1" else torch.expm1(hh)
        r_rows, b = [], []
        for i in range(1, order + 1):
            r_rows.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial_i / b_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        r_mat = torch.stack(r_rows)
        b_vec = torch.tensor(b, device=x.device)
        d1s = torch.stack(c["d1s"], dim=1) if c["d1s"] else None
        x_t_ = _expand(c["sigma_ratio"], dims) * x - _expand(alpha_t * h_phi_1, dims) * model_prev[-1]
        pred_res: Any = 0
        if d1s is not None:
            rhos_p = (
                torch.tensor([0.5], device=x.device)
                if order == 2
                else torch.linalg.solve(r_mat[:-1, :-1], b_vec[:-1])
            )
            pred_res = torch.einsum("k,bkchw->bchw", rhos_p, d1s)
        x_t = x_t_ - _expand(alpha_t * b_h, dims) * pred_res
        if not use_corrector:
            return x_t, None
        rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(r_mat, b_vec)
        model_t = self.data_prediction(x_t, t)
        corr_res: Any = torch.einsum("k,bkchw->bchw", rhos_c[:-1], d1s) if d1s is not None else 0
        d1_t = model_t - model_prev[-1]
        return x_t_ - _expand(alpha_t * b_h, dims) * (corr_res + rhos_c[-1] * d1_t), model_t

    def update_vary(
        self,
        x: torch.Tensor,
        model_prev: list[Any],
        t_prev: list[Any],
        t: torch.Tensor,
        order: int,
        use_corrector: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch

        c = self._common(model_prev, t_prev, t, order)
        rks, alpha_t = c["rks"], c["alpha_t"]
        k_len = len(rks)
        columns, col = [], torch.ones_like(rks)
        for k in range(1, k_len + 1):
            columns.append(col)
            col = col * rks / (k + 1)
        c_mat = torch.stack(columns, dim=1)
        d1s = torch.stack(c["d1s"], dim=1) if c["d1s"] else None
        a_p = torch.linalg.inv(c_mat[:-1, :-1]) if d1s is not None else None
        hh = -c["h"]
        h_phi_ks, factorial_k, h_phi_k = [], 1, torch.expm1(hh)
        for k in range(1, k_len + 2):
            h_phi_ks.append(h_phi_k)
            h_phi_k = h_phi_k / hh - 1 / factorial_k
            factorial_k *= k + 1
        x_t_ = c["sigma_ratio"] * x - alpha_t * h_phi_ks[0] * model_prev[-1]
        x_t = x_t_
        if d1s is not None and a_p is not None:
            for k in range(k_len - 1):
                x_t = x_t - alpha_t * h_phi_ks[k + 1] * torch.einsum("bkchw,k->bchw", d1s, a_p[k])
        if not use_corrector:
            return x_t, None
        a_c = torch.linalg.inv(c_mat)
        model_t = self.data_prediction(x_t, t)
        d1_t = model_t - model_prev[-1]
        x_t = x_t_
        k = 0
        for k in range(k_len - 1):
            assert d1s is not None
            x_t = x_t - alpha_t * h_phi_ks[k + 1] * torch.einsum("bkchw,k->bchw", d1s, a_c[k][:-1])
        return x_t - alpha_t * h_phi_ks[k_len] * (d1_t * a_c[k][-1]), model_t

    def update(
        self,
        x: torch.Tensor,
        model_prev: list[Any],
        t_prev: list[Any],
        t: torch.Tensor,
        order: int,
        use_corrector: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if len(t.shape) == 0:
            t = t.view(-1)
        if self.variant == "vary_coeff":
            return self.update_vary(x, model_prev, t_prev, t, order, use_corrector)
        return self.update_bh(x, model_prev, t_prev, t, order, use_corrector)


def sample_unipc(
    eps_model: Any,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback | None = None,
    is_img2img: bool = False,
    variant: str = "bh1",
    skip_type: str = "time_uniform",
    order: int = 3,
    lower_order_final: bool = True,
) -> torch.Tensor:
    """UniPC multistep over ``len(timesteps)`` steps from t = 1 (or the img2img start) to 1/N."""
    solver = UniPC(eps_model, DiscreteVPSchedule(alphas_cumprod), variant)
    steps = len(timesteps)
    if steps < order:
        raise ValueError(f"UniPC of order {order} needs at least {order} steps; got {steps}")
    t_start: Any = timesteps[-1] / 1000 + 1 / 1000 if is_img2img else 1.0
    grid = solver.time_steps(skip_type, t_start, 1.0 / solver.ns.total_n, steps, x.device)
    batch = x.shape[0]
    vec_t = grid[0].expand(batch)
    model_prev = [solver.data_prediction(x, vec_t)]
    t_prev = [vec_t]
    index = 0
    for init_order in range(1, order):
        vec_t = grid[init_order].expand(batch)
        x, model_x = solver.update(x, model_prev, t_prev, vec_t, init_order, True)
        if model_x is None:
            model_x = solver.data_prediction(x, vec_t)
        report(callback, index, x, 0, model_x)
        index += 1
        model_prev.append(model_x)
        t_prev.append(vec_t)
    for step in range(order, steps + 1):
        vec_t = grid[step].expand(batch)
        step_order = min(order, steps + 1 - step) if lower_order_final else order
        x, model_x = solver.update(x, model_prev, t_prev, vec_t, step_order, step != steps)
        report(callback, index, x, 0, x if model_x is None else model_x)
        index += 1
        for i in range(order - 1):
            t_prev[i] = t_prev[i + 1]
            model_prev[i] = model_prev[i + 1]
        t_prev[-1] = vec_t
        if step < steps:
            model_prev[-1] = solver.data_prediction(x, vec_t) if model_x is None else model_x
    return x
