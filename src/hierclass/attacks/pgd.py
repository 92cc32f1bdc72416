"""Projected gradient descent (Madry et al. 2018) in the l-inf and l2 balls.

The ball's geometry (steepest-ascent direction, projection, random start) is shared with YOPO
adversarial training; :class:`PGD` is the attack loop over it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hierclass.attacks.base import Attack, Model, _check_flag, check_attack_budget, refuses_alpha

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


def _take(t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return t if rows is None else t[rows]


def _put(t: torch.Tensor, rows: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    return value if rows is None else t.index_copy(0, rows, value)


class _Ball:
    """The threat model around the clean batch: its eps-ball intersected with [0, 1]."""

    def __init__(self, x: torch.Tensor, eps: float, norm: str, lo=None, hi=None) -> None:
        if norm == "linf" and lo is None:  # the box bounds, computed once per attack
            lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
        self.x, self.eps, self.norm, self.lo, self.hi = x, eps, norm, lo, hi

    def rows(self, index: torch.Tensor | None) -> _Ball:
        if index is None:
            return self
        lo, hi = (None if t is None else t[index] for t in (self.lo, self.hi))
        return _Ball(self.x[index], self.eps, self.norm, lo, hi)

    def project(self, x_adv: torch.Tensor) -> torch.Tensor:
        return project(x_adv, self.x, self.eps, self.norm, self.lo, self.hi)


class _Pool:
    """Per sample, the highest-loss point offered so far (ties go to the later point: near an
    optimum the loss is flat to float precision and the later iterate is better converged)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.loss = torch.full((x.shape[0],), -torch.inf, device=x.device)
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def offer(self, rows, x, loss, ok: torch.Tensor | None = None) -> None:
        """Offer ``x`` for the samples ``rows`` (``None``: all), only where ``ok`` if given."""
        better = loss >= _take(self.loss, rows)
        if ok is not None:
            better = ok & better
        keep = better.view(-1, *([1] * (x.dim() - 1)))
        self.x = _put(self.x, rows, torch.where(keep, x, _take(self.x, rows)))
        self.loss = _put(self.loss, rows, torch.where(better, loss, _take(self.loss, rows)))
        self.found = _put(self.found, rows, _take(self.found, rows) | better)


class PGD(Attack):
    """Projected gradient descent on the cross-entropy, l-inf or l2 ball, with restarts.

    Each step moves ``step_size`` along the steepest-ascent direction of the loss in the
    attack's norm (``sign`` of the gradient for l-inf, the normalised gradient for l2) and
    projects back onto the eps-ball around the clean input intersected with [0, 1]. The
    positional order is torchattacks' (``PGD(model, eps, step_size, steps)``), but the step
    size is called ``step_size``, not torchattacks' ``alpha``: in this library ``alpha`` is
    only smoothing's failure probability, and ``alpha=`` here is refused with a message.

    Each sample gets the highest-loss iterate that fooled the model (every iterate is checked
    on the forward pass its gradient step runs anyway), else the final iterate; with several
    restarts the final iterates are scored once each and the highest-loss one is kept. So a
    sample fooled at any point stays fooled, more restarts never fool fewer samples, and one
    restart costs exactly ``steps`` forward/backward passes, like a plain PGD loop. The loop
    has no host synchronisation (unless ``early_stop``); gradients flow only to the input,
    never into the model's ``.grad``.

    A :class:`~hierclass.Hierarchy` can be attacked directly: the steps follow its
    differentiable surrogate ``log h.soft_forward`` (a hard route has no gradient towards
    another route) and the real tree judges every iterate. That is the joint attack; the
    worst case over all attacks on a tree is :func:`~hierclass.attacks.evaluate_hierarchy`'s.

    Parameters
    ----------
    model : callable or Hierarchy
        Maps ``x`` ``[B, ...]`` in [0, 1] to logits ``[B, K]`` (normalisation inside).
    eps : float
        Radius of the threat model's ball, >= 0 (in [0, 1] pixel units).
    step_size : float
        Step size, > 0 (torchattacks' ``alpha``; not a probability).
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
        samples independently (as in eval mode). Costs one host synchronisation per step.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = PGD(model, eps=0.1, step_size=0.025, steps=10, seed=0)(x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6), bool(x_adv.min() >= 0 and x_adv.max() <= 1)
    (True, True)
    """

    @refuses_alpha("PGD")
    def __init__(
        self,
        model: Model,
        eps: float,
        step_size: float,
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
        check_attack_budget(eps, step_size, steps, norm)
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
            raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
        if restarts > 1 and not random_start:
            raise ValueError(
                f"restarts={restarts} without random_start would repeat the same run; "
                "set random_start=True or restarts=1"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.eps = float(eps)
        self.step_size = float(step_size)
        self.steps = steps
        self.norm = norm
        self.random_start = _check_flag(random_start, "random_start")
        self.restarts = restarts
        self.targeted = _check_flag(targeted, "targeted")
        self.seed = seed
        self.early_stop = _check_flag(early_stop, "early_stop")

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss the attack ascends: the cross-entropy, negated when targeted."""
        ce = F.cross_entropy(logits, y, reduction="none")
        return -ce if self.targeted else ce

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Run the attack on a validated batch; see the class docstring."""
        if self.eps == 0.0:
            return x.clone()
        generator = None
        if self.seed is not None and self.random_start:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        ball = _Ball(x, self.eps, self.norm)
        # hits: the highest-loss iterate that fooled the model; finals, for samples never
        # fooled: the final iterate of the restart where it has the highest loss
        hits, finals = _Pool(x), _Pool(x)
        for _ in range(self.restarts):
            if self.random_start:
                start = random_start(x, self.eps, self.norm, generator)
            else:
                start = x.clone()
            rows = None  # the samples still attacked (None: all); only early_stop drops any
            if self.early_stop:  # samples fooled in an earlier restart are done
                rows = (~hits.found).nonzero().flatten()
                if rows.numel() == 0:
                    break
            x_adv, yr, rows = self._ascend(
                _take(start, rows), ball.rows(rows), _take(y, rows), rows, hits
            )
            if self.restarts == 1:  # not scored: one restart costs exactly `steps` passes
                finals.x = _put(finals.x, rows, x_adv)
                break
            if rows is not None and rows.numel() == 0:
                continue
            with torch.no_grad():
                logits = self.get_logits(x_adv)
                loss = self.loss(logits, yr)
            hits.offer(rows, x_adv, loss, self.fooled(x_adv, logits, yr, self.targeted))
            finals.offer(rows, x_adv, loss)
        return torch.where(hits.found.view(-1, *([1] * (x.dim() - 1))), hits.x, finals.x)

    def _ascend(self, x_adv, ball: _Ball, y, rows, hits: _Pool):
        """``steps`` projected steps from ``x_adv``, offering every fooling iterate to ``hits``.

        Returns the final iterates, their labels and rows (fewer with ``early_stop``).
        """
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            logits = self.get_logits(x_adv)
            loss = self.loss(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            x_adv, logits, loss = x_adv.detach(), logits.detach(), loss.detach()
            fooled = self.fooled(x_adv, logits, y, self.targeted)
            hits.offer(rows, x_adv, loss, fooled)
            x_adv = ball.project(x_adv + self.step_size * ascent_direction(grad, self.norm))
            if self.early_stop:  # drop the samples this iterate fooled (one host sync)
                keep = (~fooled).nonzero().flatten()
                if keep.numel() < fooled.numel():
                    rows, x_adv, ball, y = rows[keep], x_adv[keep], ball.rows(keep), y[keep]
                if rows.numel() == 0:
                    break
        return x_adv, y, rows
