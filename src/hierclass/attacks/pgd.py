"""Projected gradient descent (Madry et al. 2018) in the l-inf and l2 balls."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hierclass.attacks.base import Attack, Model, check_budget

_TINY = 1e-12


def _per_sample_l2(t: torch.Tensor) -> torch.Tensor:
    """l2 norm of each sample, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit size in the attack's norm.

    l-inf: ``sign(grad)``; l2: ``grad / ||grad||`` per sample (zero where the gradient is zero).

    Examples
    --------
    >>> ascent_direction(torch.tensor([[3.0, -4.0]]), "l2")
    tensor([[ 0.6000, -0.8000]])
    """
    if norm == "linf":
        return grad.sign()
    return grad / _per_sample_l2(grad).clamp_min(_TINY)


def project(
    x_adv: torch.Tensor,
    x: torch.Tensor,
    eps: float,
    norm: str,
    lo: torch.Tensor | None = None,
    hi: torch.Tensor | None = None,
) -> torch.Tensor:
    """Project ``x_adv`` onto the intersection of the eps-ball around ``x`` and [0, 1].

    For l-inf the intersection is a box, so the projection is exact; pass the precomputed
    bounds ``lo = max(x - eps, 0)``, ``hi = min(x + eps, 1)`` to save two ops per step. For l2
    the ball projection is followed by clipping to [0, 1]; clipping only moves coordinates
    towards ``x`` (``x`` itself is in [0, 1]), so the result stays in the ball.

    Examples
    --------
    >>> x = torch.tensor([[0.5, 0.95]])
    >>> project(torch.tensor([[0.9, 1.2]]), x, 0.1, "linf")
    tensor([[0.6000, 1.0000]])
    >>> project(torch.tensor([[0.5, 0.0]]), x, 0.5, "l2")
    tensor([[0.5000, 0.4500]])
    """
    if norm == "linf":
        if lo is None or hi is None:
            lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
        return torch.minimum(torch.maximum(x_adv, lo), hi)
    delta = x_adv - x
    scale = (eps / _per_sample_l2(delta).clamp_min(_TINY)).clamp_(max=1.0)
    return (x + delta * scale).clamp_(0.0, 1.0)


def random_start(
    x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random point of the eps-ball around ``x``, clipped to [0, 1].

    l-inf: uniform in the cube. l2: a uniform direction with radius ``eps * U``, U uniform
    in [0, 1] (not uniform in volume: in high dimension that puts every start on the sphere,
    where the first steps are wasted getting back inside, and measurably weakens PGD).

    Examples
    --------
    >>> x = torch.full((3, 8), 0.5)
    >>> start = random_start(x, 0.1, "l2", torch.Generator().manual_seed(0))
    >>> bool(((start - x).norm(dim=1) <= 0.1 + 1e-6).all())
    True
    """
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + (2.0 * noise - 1.0) * eps).clamp_(0.0, 1.0)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / _per_sample_l2(direction).clamp_min(_TINY)
    u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    radius = eps * u
    return (x + direction * radius.view(-1, *([1] * (x.dim() - 1)))).clamp_(0.0, 1.0)


class PGD(Attack):
    """Projected gradient descent on the cross-entropy, l-inf or l2 ball, with restarts.

    Each step moves ``alpha`` along the steepest-ascent direction of the loss in the attack's
    norm (``sign`` of the gradient for l-inf, the normalised gradient for l2) and projects
    back onto the eps-ball around the clean input intersected with [0, 1].

    Each sample gets the highest-loss iterate that fooled the model (every iterate is checked
    on the forward pass its gradient step runs anyway), else the final iterate; with several
    restarts the final iterates are scored once each and the highest-loss one is kept. So a
    sample fooled at any point stays fooled, more restarts never fool fewer samples, and one
    restart costs exactly ``steps`` forward/backward passes, like a plain PGD loop. The loop
    has no host synchronisation (unless ``early_stop``); gradients flow only to the input,
    never into the model's ``.grad``.

    Parameters
    ----------
    model : callable
        Maps ``x`` ``[B, ...]`` in [0, 1] to logits ``[B, K]`` (normalisation inside).
    eps : float
        Radius of the threat model's ball, >= 0 (in [0, 1] pixel units).
    alpha : float
        Step size, > 0.
    steps : int
        Number of gradient steps, >= 1.
    norm : {"linf", "l2"}
        The threat model's norm.
    random_start : bool
        Start each restart from a uniform point of the ball (else from ``x``).
    restarts : int
        Independent runs; each sample keeps its best iterate over all of them.
    targeted : bool
        If True, ``y`` are target labels and the attack minimises their cross-entropy.
    seed : int or None
        Seeds the random starts (a fresh generator per call) for reproducible attacks;
        ``None`` uses torch's global RNG.
    eval_mode : bool
        Attack the model in eval mode (its flags are restored afterwards).
    channels_last : bool or None
        Run a convolutional model channels-last (see :class:`~hierclass.attacks.Attack`);
        ``None`` does so on CPU, where it measured about 1.1x faster per attack here.
    early_stop : bool, default False
        Stop attacking a sample as soon as an iterate fools the model. *Which* samples end up
        fooled does not change (a fooled sample stays fooled in any case, and the others
        follow the same trajectories, up to float effects of the smaller batch), so robust
        accuracy is the same for less work. What changes is the point returned for a fooled
        sample: the first iterate that fooled the model instead of the highest-loss one. Use
        it to *evaluate*; keep the default for adversarial training, whose signal is the
        high-loss point. The model is called on shrinking sub-batches, so it must treat
        samples independently (as in eval mode). "Fooled" means fooled *this* model: when
        the verdict comes from another one (the hierarchy's joint attack attacks a soft
        surrogate but judges the hard tree) stopping early weakens the attack, and
        :func:`~hierclass.attacks.joint_attack` refuses it. Costs one host synchronisation
        per step.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = PGD(model, eps=0.1, alpha=0.025, steps=10, seed=0)(x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6), bool(x_adv.min() >= 0 and x_adv.max() <= 1)
    (True, True)
    """

    def __init__(
        self,
        model: Model,
        eps: float,
        alpha: float,
        steps: int,
        norm: str = "linf",
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        *,
        seed: int | None = None,
        eval_mode: bool = True,
        channels_last: bool | None = None,
        early_stop: bool = False,
    ) -> None:
        super().__init__(model, eval_mode=eval_mode, channels_last=channels_last)
        check_budget(eps, alpha, steps, norm)
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
            raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
        if restarts > 1 and not random_start:
            raise ValueError(
                f"restarts={restarts} without random_start would repeat the same run; "
                "set random_start=True or restarts=1"
            )
        self.eps = float(eps)
        self.alpha = float(alpha)
        self.steps = steps
        self.norm = norm
        self.random_start = bool(random_start)
        self.restarts = restarts
        self.targeted = bool(targeted)
        self.seed = seed
        self.early_stop = bool(early_stop)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Run the attack on a validated batch; see the class docstring."""
        if self.eps == 0.0:
            return x.clone()
        generator = None
        if self.seed is not None and self.random_start:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        lo = hi = None
        if self.norm == "linf":
            lo, hi = (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)
        shape = (-1,) + (1,) * (x.dim() - 1)
        # Untargeted: maximise CE; targeted: maximise -CE towards y.
        sign = -1.0 if self.targeted else 1.0

        n = x.shape[0]
        # Pool 1: the highest-loss iterate that fooled the model (checked for free on every
        # iterate whose forward pass the gradient step already ran).
        hit_x = x
        hit_found = torch.zeros(n, dtype=torch.bool, device=x.device)
        hit_loss = torch.full((n,), -torch.inf, device=x.device)
        # Pool 2, for samples never fooled: the final iterate (of the restart where it has the
        # highest loss). With one restart it is not scored, so the attack costs exactly
        # `steps` forward/backward passes, like a plain PGD loop.
        final_x = x
        final_loss = torch.full((n,), -torch.inf, device=x.device)

        # `rows`: the samples still attacked (None: all). Only early_stop ever shrinks it.
        def take(t, rows):
            return t if rows is None or t is None else t[rows]

        def put(t, rows, value):
            return value if rows is None else t.index_copy(0, rows, value)

        def fooled(logits: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
            hit = logits.argmax(dim=1) == yy
            return hit if self.targeted else ~hit

        def pool_hits(rows, candidate, logits, loss, yy) -> torch.Tensor:
            nonlocal hit_x, hit_found, hit_loss
            # Ties go to the later iterate: near an optimum the loss is flat to float precision
            # and the later iterate is the better-converged point.
            now = fooled(logits, yy)
            better = now & (loss >= take(hit_loss, rows))
            hit_x = put(hit_x, rows, torch.where(better.view(shape), candidate, take(hit_x, rows)))
            hit_loss = put(hit_loss, rows, torch.where(better, loss, take(hit_loss, rows)))
            hit_found = put(hit_found, rows, take(hit_found, rows) | better)
            return now

        for _ in range(self.restarts):
            if self.random_start:
                start = random_start(x, self.eps, self.norm, generator)
            else:
                start = x.clone()
            rows = None
            if self.early_stop:  # samples fooled in an earlier restart are done
                rows = (~hit_found).nonzero().flatten()
                if rows.numel() == 0:
                    break
            x_adv, x0, y0, lo0, hi0 = (take(t, rows) for t in (start, x, y, lo, hi))
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                logits = self.forward_(x_adv)
                loss = sign * F.cross_entropy(logits, y0, reduction="none")
                (grad,) = torch.autograd.grad(loss.sum(), x_adv)
                x_adv = x_adv.detach()
                now = pool_hits(rows, x_adv, logits.detach(), loss.detach(), y0)
                x_adv = project(
                    x_adv + self.alpha * ascent_direction(grad, self.norm),
                    x0,
                    self.eps,
                    self.norm,
                    lo0,
                    hi0,
                )
                if self.early_stop:
                    # drop the samples this iterate fooled (one host sync per step)
                    keep = (~now).nonzero().flatten()
                    if keep.numel() < now.numel():
                        rows = keep if rows is None else rows[keep]
                        x_adv, x0, y0, lo0, hi0 = (take(t, keep) for t in (x_adv, x0, y0, lo0, hi0))
                    if rows.numel() == 0:
                        break
            if self.restarts == 1:
                final_x = put(final_x, rows, x_adv)
                break
            if rows is not None and rows.numel() == 0:
                continue
            with torch.no_grad():
                logits = self.forward_(x_adv)
                loss = sign * F.cross_entropy(logits, y0, reduction="none")
            pool_hits(rows, x_adv, logits, loss, y0)
            better = loss >= take(final_loss, rows)
            final_x = put(
                final_x, rows, torch.where(better.view(shape), x_adv, take(final_x, rows))
            )
            final_loss = put(final_loss, rows, torch.where(better, loss, take(final_loss, rows)))
        return torch.where(hit_found.view(shape), hit_x, final_x)
