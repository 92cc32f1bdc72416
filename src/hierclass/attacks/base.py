"""The attack base class: it owns the checks, the model's mode, the device and the verdict.

An attack is a callable ``attack(x, y) -> x_adv`` on inputs in [0, 1] (the torchattacks
convention: normalisation belongs inside the model). :class:`Attack` validates the batch once,
puts the model in eval mode and hands every submodule's flag back, enables gradients under a
caller's ``no_grad``/``inference_mode``, picks the memory layout, and says whether a point fools
the model; a subclass implements only :meth:`Attack.perturb`, the algorithm.

The model can be an ``nn.Module``, any callable returning logits, or a
:class:`~hierclass.Hierarchy`. A hierarchy's routing is a hard ``argmax``, so its output carries
no gradient towards another route: an attack on a hierarchy follows the gradient of its
differentiable surrogate ``log h.soft_forward`` (route probability times leaf probability) and
asks the real tree (``h.predict``) whether a point fools it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from hierclass._utils.checks import check_labels
from hierclass._utils.deferred import deferred_checks
from hierclass._utils.modules import model_mode
from hierclass.attacks._surrogate import Surrogate, as_surrogate
from hierclass.channels_last import (
    ChannelsLastForward,
    call_with_fallback,
    check_channels_last,
    has_4d_weights,
)
from hierclass.inputs import IMAGE_RANGE, check_inputs

Model = Callable[[torch.Tensor], torch.Tensor]
_F = TypeVar("_F", bound=Callable[..., Any])

NORMS = ("linf", "l2")

#: How a bad attack input is named: the range is the attacks' contract, not a declared one.
_WHAT_X = "x (attacks take inputs in [0, 1]; normalisation belongs inside the model)"


def _check_real(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")


def check_attack_budget(
    eps: float,
    step_size: float,
    steps: int,
    norm: str,
    *,
    steps_name: str = "steps",
) -> None:
    """Validate the threat-model numbers shared by PGD and YOPO: radius, step size, steps, norm.

    (Not :func:`hierclass.smoothing.engine.prepare.check_budget`, which checks smoothing's
    draw counts and failure probability.)

    Examples
    --------
    >>> check_attack_budget(0.3, 0.01, 40, "linf")
    >>> check_attack_budget(-0.1, 0.01, 40, "linf")
    Traceback (most recent call last):
    ...
    ValueError: eps must be >= 0, got -0.1
    """
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"{steps_name} must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"{steps_name} must be >= 1, got {steps}")
    _check_real(eps, "eps")
    _check_real(step_size, "step_size")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def refuses_alpha(owner: str) -> Callable[[_F], _F]:
    """Decorate a function (or ``__init__``) whose step size is ``step_size=``: a call passing
    ``alpha=`` gets a one-line ``TypeError`` naming ``step_size=`` (torchattacks calls the step
    size ``alpha``; here ``alpha`` is only smoothing's failure probability).

    Examples
    --------
    >>> @refuses_alpha("PGD")
    ... def attack(eps, step_size, steps):
    ...     return step_size
    >>> attack(0.1, step_size=0.01, steps=3)
    0.01
    >>> attack(0.1, alpha=0.01, steps=3)
    Traceback (most recent call last):
    ...
    TypeError: PGD's step size is step_size= (alpha is smoothing's failure probability)
    """

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if "alpha" in kwargs:
                raise TypeError(
                    f"{owner}'s step size is step_size= (alpha is smoothing's failure "
                    "probability)"
                )
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


class Attack:
    """Base class: ``attack(x, y) -> x_adv`` with checks, eval mode and gradients enabled.

    Subclasses implement :meth:`perturb` and call :meth:`get_logits` (the differentiable
    scores), :meth:`fooled` (the verdict) and :meth:`loss`. ``__call__`` validates ``x`` (a
    finite float tensor in [0, 1]) and ``y`` (integer labels ``[B]`` inside the model's
    outputs), puts the model in eval mode (``eval_mode=True``) or leaves its mode alone,
    enables gradients even under a caller's ``torch.no_grad()``, and restores every
    submodule's train/eval flag afterwards.

    Parameters
    ----------
    model : callable or Hierarchy
        Maps a batch ``[B, ...]`` in [0, 1] to logits ``[B, K]``. A
        :class:`~hierclass.Hierarchy` is attacked through ``log h.soft_forward`` and judged by
        ``h.predict`` (see the module docstring).
    eval_mode : bool
        Attack the model in eval mode (dropout off, batch-norm running statistics, which are
        then not updated by the attack). ``False`` attacks it in whatever mode it is in.
    channels_last : bool or None
        Run a convolutional ``nn.Module`` with channels-last copies of its 4-D weights and
        inputs (:class:`~hierclass.channels_last.ChannelsLastForward`; the model itself is not
        changed, and the copies follow its training). ``None`` (default) does so for 4-D
        inputs on CPU, where oneDNN's convolutions are faster that way, and falls back to the
        plain call for a model whose ``forward`` cannot run channels-last; ``False`` never.

    Examples
    --------
    >>> class Identity(Attack):
    ...     def perturb(self, x, y):
    ...         return x.clone()
    >>> Identity(torch.nn.Linear(4, 2))(torch.rand(3, 4), torch.tensor([0, 1, 0])).shape
    torch.Size([3, 4])
    """

    def __init__(
        self, model: Model, *, eval_mode: bool = True, channels_last: bool | None = None
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable (x -> logits), got {type(model).__name__}")
        self.model = model
        self.eval_mode = _check_flag(eval_mode, "eval_mode")
        # what the gradient follows; a Surrogate also carries the judge and the label count
        self.scores_: Model = as_surrogate(model)
        self.channels_last = check_channels_last(channels_last, self.scores_)
        self.forward_: Model = self.scores_  # the scores in the layout chosen per call
        self._fast_: ChannelsLastForward | None = None
        self._fast_works_: bool | None = None  # learnt on the first auto call
        # set per call, checked against the width of the first logits, then cleared
        self._labels_: torch.Tensor | None = None
        self._label_max_: int | None = None

    # ------------------------------------------------------------------ what subclasses use
    def get_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The differentiable scores ``[B, K]`` the attack follows (the surrogate's for a tree).

        The first call of each attack checks their shape and that every label is below ``K``.
        """
        logits = self.forward_(x)
        if self._label_max_ is not None:
            self._check_outputs(logits, x.shape[0])
        return logits

    def fooled(
        self, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, targeted: bool = False
    ) -> torch.Tensor:
        """Bool ``[B]``: whether ``x`` fools the model (untargeted) or hits ``y`` (targeted).

        A plain model is judged by the ``argmax`` of the ``logits`` its forward pass gave (no
        extra pass); a surrogate (a hierarchy) by its judge, the real tree, which reads its
        verdict off the pass that gave ``logits`` when it can (no extra pass, no host sync).
        """
        if isinstance(self.scores_, Surrogate):
            with torch.no_grad():
                pred = self.scores_.judge(x.detach(), logits)
        else:
            pred = logits.argmax(dim=1)
        hit = pred == y
        return hit if targeted else ~hit

    # ------------------------------------------------------------------ the boundary
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial examples for ``x`` ``[B, ...]`` in [0, 1] with labels ``y`` ``[B]``.

        Raises ``TypeError``/``ValueError`` before any work for a non-tensor or non-float
        ``x``, non-finite values or values outside [0, 1], labels of the wrong dtype or shape,
        and labels outside the model's outputs.
        """
        self._check_call(x, y)
        y = y.to(device=x.device, dtype=torch.long)
        mode = False if self.eval_mode else None
        # inference_mode(False) + clone: a caller under inference_mode still gets gradients.
        try:
            with torch.inference_mode(False), model_mode(self.model, mode), torch.enable_grad():
                x = x.detach().clone() if x.is_inference() else x.detach()
                y = y.clone() if y.is_inference() else y
                self.forward_ = self._pick_forward(x)
                with deferred_checks():  # a hierarchy's checks, read once (no sync per step)
                    x_adv = self.perturb(x, y)
        finally:
            self._labels_ = self._label_max_ = None
        return x_adv.detach()

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return adversarial examples for a validated batch (subclasses implement this)."""
        raise NotImplementedError

    def _check_call(self, x: Any, y: Any) -> None:
        if isinstance(x, dict):
            raise TypeError(
                "attacks perturb one tensor; for a dict batch attack the modality a node reads "
                "(hierclass.attacks.sequential_attack / budgeted_attack take a threat model)"
            )
        if not torch.is_tensor(x):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
        if x.dim() == 0:
            raise ValueError("x needs a leading batch dimension [B, ...], got a 0-d tensor")
        check_inputs(x, input_range=IMAGE_RANGE, what=_WHAT_X)
        y = check_labels(y, x, "y")
        if y.numel() == 0:
            return
        lo, hi = (int(v) for v in torch.aminmax(y))  # one host sync, at the boundary
        num = getattr(self.scores_, "num_classes", None)
        if lo < 0 or (num is not None and hi >= num):
            self._raise_labels(y, num)
        self._labels_, self._label_max_ = y, hi  # checked on the first forward

    def _check_outputs(self, logits: Any, n: int) -> None:
        if not torch.is_tensor(logits) or logits.dim() != 2 or logits.shape[0] != n:
            got = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
            raise ValueError(f"the model must return logits [B, K] = [{n}, K], got {got}")
        if self._label_max_ >= logits.shape[1]:
            self._raise_labels(self._labels_, logits.shape[1])
        self._labels_ = self._label_max_ = None

    @staticmethod
    def _raise_labels(y: torch.Tensor, num: int | None) -> None:
        if num is None:
            bad = y[y < 0]
            expected = "labels >= 0"
        else:
            bad = y[(y < 0) | (y >= num)]
            expected = f"labels in 0..{num - 1} (the model has {num} outputs)"
        raise ValueError(f"y must hold {expected}, got labels {bad.unique().tolist()}")

    def _pick_forward(self, x: torch.Tensor) -> Model:
        """The scores, or their channels-last twin when asked for or (auto) likely faster."""
        model = self.scores_
        if self.channels_last is False or not has_4d_weights(model):
            return model
        if self.channels_last is None and (x.dim() != 4 or x.device.type != "cpu"):
            return model
        if self._fast_ is None:
            self._fast_ = ChannelsLastForward(model)
        if self.channels_last is None and self._fast_works_ is None:
            # one sample tells whether forward() can run channels-last at all (a .view on a
            # conv output cannot); then the choice is remembered. A surrogate tied to its
            # batch's rows is probed on the whole batch.
            probe = x if getattr(model, "whole_batch_only", False) else x[:1]
            with torch.no_grad():
                _, self._fast_works_ = call_with_fallback(self._fast_, model, probe)
        if self.channels_last is None and not self._fast_works_:
            return model
        return self._fast_

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}"
            for k, v in vars(self).items()
            if k != "model" and not k.endswith("_") and not k.startswith("_")
        )
        return f"{type(self).__name__}({params})"
