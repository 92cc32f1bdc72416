"""``Smooth``: Cohen et al.'s smoothed classifier, with hierclass's extras.

The two methods users know, ``predict`` and ``certify``, keep the reference implementation's
signatures, defaults and semantics. Extra keyword arguments carry what hierclass adds:
reproducible per-sample noise (``seed``, ``index``), ``batch_size="auto"``, full count vectors
and many label-subset certificates from one set of samples (:meth:`Smooth.certify_detailed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from hierclass._utils.modules import model_device
from hierclass.channels_last import check_channels_last
from hierclass.inputs import InputRange, check_input_range
from hierclass.smoothing.certificates.bounds import check_alpha, check_sigma, top_two_pvalue
from hierclass.smoothing.certificates.counts import ABSTAIN, BOUNDS
from hierclass.smoothing.certificates.subsets import SubsetHead, check_subsets
from hierclass.smoothing.engine.flat_engine import flat_engine
from hierclass.smoothing.engine.precision import check_amp_dtype, warn_slow_amp
from hierclass.smoothing.engine.prepare import (
    BatchSize,
    check_budget,
    check_count,
    noise_index,
    prepare_sample,
    warn_training_mode,
)
from hierclass.smoothing.engine.protocol import Prepared, open_run
from hierclass.smoothing.engine.sampling import (
    STREAM_ESTIMATE,
    STREAM_PREDICT,
    STREAM_SELECT,
    CountEngine,
    Request,
    Task,
)
from hierclass.smoothing.flat.iss import ISSResult, certify_iss_many
from hierclass.smoothing.flat.result import SmoothResult, smooth_result
from hierclass.smoothing.sequential.sessions import RadiiResult, certify_radii

__all__ = ["Smooth", "SmoothResult"]


class Smooth:
    """A smoothed classifier ``g(x) = argmax_c P(f(x + eps) = c)``, ``eps ~ N(0, sigma^2 I)``.

    Parameters
    ----------
    base_classifier : nn.Module or callable
        Maps a batch ``[B, ...]`` (or a dict of modalities) to logits ``[B, num_classes]``.
        Noise is added in its input space: normalisation belongs inside the model.
    num_classes : int
        Number of logits the classifier returns.
    sigma : float
        Noise standard deviation, > 0.
    seed : int or None, default 0
        Base seed of the per-sample noise streams: a result depends only on ``(seed, index)``
        and the arguments, never on batch size, batch composition or sharding. ``None`` draws
        a fresh base seed from torch's global generator at each call (Cohen's behaviour).
    device : torch.device or str, optional
        Where noise is drawn and counted (default: the model's device).
    perturbed_keys : sequence of str, optional
        For dict inputs: the modalities the noise (and the adversary) touches. Default: every
        floating-point modality.
    amp_dtype : torch.dtype, optional
        Run the base classifier under ``torch.autocast`` in this precision
        (``torch.bfloat16`` or ``torch.float16``): faster where the hardware computes it
        natively (GPUs; CPUs with AVX512_BF16 or AMX), several times slower where torch
        emulates it (other CPUs; a warning says so; figures in ``docs/benchmarks.md``). The
        votes, and so the certificate, are then those of the classifier *as executed in that
        precision*. That is a deterministic function too, so
        the certificate is sound for it, but it is not a certificate for the float32 model.
        Default ``None``: the model's own precision.
    channels_last : bool or None
        Run a convolutional ``nn.Module`` with channels-last copies of its weights (the model
        is not changed; :mod:`hierclass.channels_last`). ``None`` (default): the
        ``batch_size="auto"`` probe decides, and an int batch size runs the model as given.
        ``True``: always, whatever the batch size. ``False``: never.
    input_range : (low, high) or dict, optional
        The range of the inputs (per modality for dict inputs; see :mod:`hierclass.inputs`).
        Image-shaped inputs default to [0, 1]. Non-finite values and values outside the range
        are errors, never clamped; so are non-finite logits.

    Attributes
    ----------
    ABSTAIN : int
        ``-1``, returned when the smoothed classifier abstains.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> f = torch.nn.Linear(2, 2).eval()
    >>> with torch.no_grad():
    ...     _ = f.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), f.bias.zero_()
    >>> s = Smooth(f, num_classes=2, sigma=0.5)
    >>> label, radius = s.certify(torch.tensor([1.0, 0.0]), n0=100, n=2000, alpha=0.001,
    ...                           batch_size=500)
    >>> label, 0.8 < radius < 1.0  # the exact radius is the distance to x0 = 0: 1.0
    (0, True)
    >>> s.predict(torch.tensor([1.0, 0.0]), n=200, alpha=0.001, batch_size=200)
    0
    """

    ABSTAIN = ABSTAIN

    def __init__(
        self,
        base_classifier: Callable[[Any], torch.Tensor],
        num_classes: int,
        sigma: float,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = None,
        perturbed_keys: Sequence[str] | None = None,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool | None = None,
        input_range: InputRange = None,
    ) -> None:
        if not callable(base_classifier):
            raise TypeError(
                f"base_classifier must be an nn.Module or a callable returning logits, got "
                f"{type(base_classifier).__name__}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(f"num_classes must be an int >= 2, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be a non-negative int or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.base_classifier = base_classifier
        self.num_classes = int(num_classes)
        self.sigma = check_sigma(sigma)
        self.seed = None if seed is None else int(seed)
        self.device = torch.device(device) if device is not None else model_device(base_classifier)
        self.perturbed_keys = None if perturbed_keys is None else tuple(perturbed_keys)
        self.amp_dtype = check_amp_dtype(amp_dtype)
        self.channels_last = check_channels_last(channels_last, base_classifier)
        warn_slow_amp(self.amp_dtype, self.device)
        self.input_range = check_input_range(input_range)
        warn_training_mode(base_classifier)

    # ------------------------------------------------------------------ the certifier protocol
    def noise_seed(self) -> int:
        """The base seed of one call's noise streams: ``seed``, or a fresh one when ``None``."""
        if self.seed is not None:
            return self.seed
        return int(torch.randint(0, 2**62, (1,)).item())

    def prepare(self, x: Any) -> Prepared:
        """One input without batch dimension, validated and moved to the device.

        Part of the protocol every certifier uses
        (:class:`~hierclass.smoothing.engine.protocol.Smoothed`); a flat classifier samples the
        whole input, so ``full`` and ``sampled`` are the same.

        Examples
        --------
        >>> s = Smooth(torch.nn.Linear(2, 2).eval(), 2, sigma=0.5)
        >>> p = s.prepare(torch.zeros(2))
        >>> p.sampled is p.full, p.sampled.shape
        (True, torch.Size([2]))
        """
        xd = prepare_sample(x, self.device, input_range=self.input_range)
        return Prepared(xd, xd)

    def __repr__(self) -> str:
        amp = "" if self.amp_dtype is None else f", amp_dtype={self.amp_dtype}"
        cl = "" if self.channels_last is None else f", channels_last={self.channels_last}"
        return (
            f"Smooth({type(self.base_classifier).__name__}, num_classes={self.num_classes}, "
            f"sigma={self.sigma}, seed={self.seed}{amp}{cl})"
        )

    def engine(
        self,
        batch_size: BatchSize,
        example: Prepared,
        heads: SubsetHead | None = None,
        *,
        expected_draws: int | None = None,
    ) -> CountEngine:
        """The engine counting this classifier's votes (see :func:`flat_engine`).

        ``heads`` also counts restricted votes per label subset; ``expected_draws`` lets a
        long ``batch_size="auto"`` run consider ``torch.compile``.
        """
        return flat_engine(self, batch_size, example, heads, expected_draws=expected_draws)

    # ------------------------------------------------------------------ Cohen's API
    def sample_counts(
        self,
        x: Any,
        n: int,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
        stream: int = STREAM_ESTIMATE,
    ) -> np.ndarray:
        """Votes of the base classifier on ``n`` noisy copies of ``x``: int64 ``[num_classes]``.

        Examples
        --------
        >>> s = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=1.0)
        >>> int(s.sample_counts(torch.zeros(3), n=50, batch_size=16).sum())
        50
        """
        n = check_count("n", n)
        xd = self.prepare(x)
        engine = self.engine(batch_size, xd)
        (task,) = engine.run([Task(xd.sampled, noise_index(index), [Request(stream, n)])])
        return task.counts[0][0]

    def predict(
        self,
        x: Any,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
    ) -> int:
        """Cohen's PREDICT: the top label, or ``ABSTAIN`` if it does not beat the runner-up.

        A two-sided binomial test of the top two counts out of ``n`` draws; abstains when its
        p-value exceeds ``alpha`` (the returned label is wrong with probability <= alpha).

        Parameters
        ----------
        x : Tensor, shape [...]
            One input without batch dimension (or a dict of modalities).
        n : int
            Monte-Carlo draws.
        alpha : float
            Failure probability.
        batch_size : int or "auto"
            Draws per forward pass; ``"auto"`` probes the fastest size (and layout, see
            ``channels_last`` in the class docstring) once per model and input shape.
        index : int or None, keyword-only
            The noise index (the input's position in its data set). ``None`` (default): a
            fresh random index, so that independent calls draw independent noise.

        Returns
        -------
        int
            A label or ``Smooth.ABSTAIN``.
        """
        n = check_count("n", n)
        alpha = check_alpha(alpha)
        counts = self.sample_counts(x, n, batch_size, index=index, stream=STREAM_PREDICT)
        top, pvalue = top_two_pvalue(counts)
        return self.ABSTAIN if pvalue > alpha else top

    def certify(
        self,
        x: Any,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
    ) -> tuple[int, float]:
        """Cohen's CERTIFY: ``(label, radius)``, or ``(Smooth.ABSTAIN, 0.0)``.

        ``n0`` draws select the top label; ``n`` fresh draws bound its probability from below
        (one-sided Clopper-Pearson at level ``alpha``); the radius is
        ``sigma * Phi^-1(pA_lower)``. Abstains when ``pA_lower < 1/2``.

        Parameters
        ----------
        x : Tensor, shape [...]
            One input without batch dimension (or a dict of modalities).
        n0 : int
            Selection draws (they pick the label).
        n : int
            Estimation draws (they bound its probability).
        alpha : float
            Failure probability of the certificate.
        batch_size : int or "auto"
            Draws per forward pass; ``"auto"`` probes the fastest size (and layout, see
            ``channels_last`` in the class docstring) once per model and input shape.
        index : int or None, keyword-only
            The noise index (the input's position in its data set). ``None`` (default): a
            fresh random index drawn from torch's global generator, so that independent calls
            draw independent noise, as Cohen's ``certify`` does (a loop over a data set with
            one fixed index would make every certificate fail together). Pass ``index`` (with
            the ``seed`` of the constructor) to reproduce a result exactly.

        Returns
        -------
        (int, float)
        """
        res = self.certify_detailed(x, n0, n, alpha, batch_size, index=index)
        return res.certificate.label, res.certificate.radius

    # ------------------------------------------------------------------ hierclass's extras
    def certify_detailed(
        self,
        x: Any,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
        subsets: Iterable[Sequence[int]] | None = None,
        bounds: Sequence[str] = ("cohen", "margin"),
    ) -> SmoothResult:
        """Certify ``x`` flat and within each label subset, from one set of samples.

        Parameters
        ----------
        x : Tensor, shape [...]
            One input without batch dimension.
        n0
            As in :meth:`certify`.
        n
            As in :meth:`certify`.
        alpha
            As in :meth:`certify`.
        batch_size
            As in :meth:`certify`.
        index : int or None
            The noise index (``None``: a fresh one, see :meth:`certify`).
        subsets : iterable of sequences of int, optional
            Label subsets ``L`` to certify within (e.g. the classes of a partition, or
            :func:`~hierclass.smoothing.certificates.subsets.subsets_of_size`).
        bounds : sequence of {"cohen", "margin"}
            The bounds of the subset certificates to compute: Cohen's on the restricted votes
            (base renormalisation) and the restricted margin (see
            :mod:`hierclass.smoothing.certificates.counts` for why each is sound).

        Returns
        -------
        SmoothResult

        Examples
        --------
        >>> s = Smooth(torch.nn.Linear(3, 4).eval(), num_classes=4, sigma=0.25)
        >>> r = s.certify_detailed(torch.zeros(3), n0=20, n=200, alpha=0.01, batch_size=64,
        ...                        subsets=[[0, 1], [2, 3]])
        >>> r.subset_counts.shape, int(r.counts.sum())
        ((2, 4), 200)
        """
        (res,) = self.certify_many(
            [x],
            n0,
            n,
            alpha,
            batch_size,
            indices=[noise_index(index)],
            subsets=subsets,
            bounds=bounds,
        )
        return res

    def certify_many(
        self,
        xs: Iterable[Any],
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        indices: Iterable[int] | None = None,
        subsets: Iterable[Sequence[int]] | None = None,
        bounds: Sequence[str] = ("cohen", "margin"),
    ) -> Iterator[SmoothResult]:
        """Certify a stream of inputs, packing several per forward pass when ``n`` is small.

        Yields one :class:`SmoothResult` per input, in order, as soon as its counts are in.
        ``indices`` are the noise indices: pass the inputs' positions in the data set so that
        shards of a data set reproduce a one-process run. Default: fresh random indices, so
        that every call draws independent noise. With ``batch_size="auto"`` and a sized
        ``xs`` or ``indices``, a run whose draws would keep the eager model busy for over
        :data:`~hierclass.smoothing.engine.batch_size.COMPILE_MIN_SECONDS` also tries
        ``torch.compile`` and keeps it only when it repays its compilation (the plan is printed).
        """
        n0, n, alpha = check_budget(n0, n, alpha)
        for m in bounds:
            if m not in BOUNDS:
                raise ValueError(f"bounds must be drawn from {BOUNDS}, got {m!r}")
        subs = () if subsets is None else check_subsets(subsets, self.num_classes)
        head = SubsetHead(subs, self.num_classes, self.device) if subs else None
        # A long run of known length may repay torch.compile (batch_size="auto" decides).
        known = indices if hasattr(indices, "__len__") else xs
        expected = len(known) * (n0 + n) if hasattr(known, "__len__") else None
        engine, pairs = open_run(self, xs, indices, batch_size, heads=head, expected_draws=expected)
        if engine is None:
            return iter(())
        tasks = (
            Task(x.sampled, i, [Request(STREAM_SELECT, n0), Request(STREAM_ESTIMATE, n)])
            for x, i in pairs
        )

        def results():
            for task in engine.run(tasks):
                yield smooth_result(task, alpha, self.sigma, subs, head, bounds)

        return results()

    # ------------------------------------------------------------------ sequential
    def certify_radii(
        self,
        x: Any,
        radii: Sequence[float],
        n0: int = 100,
        max_n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
        subsets: Iterable[Sequence[int]] | None = None,
    ) -> RadiiResult:
        """Sequential certification: is ``x`` certified at each radius in ``radii``?

        Draws estimation samples look by look and stops as soon as every radius is decided,
        usually after far fewer than ``max_n`` draws. Guarantee: with probability
        ``>= 1 - alpha``, every radius reported certified is certified for the smoothed
        classifier at ``x``, simultaneously over the radii and whenever sampling stops
        (an anytime-valid confidence sequence for ``pA`` at ``0.8 alpha``, a mixture of
        likelihood ratios valid at every sample size by Ville's inequality, plus one
        Clopper-Pearson bound at ``0.2 alpha`` if sampling reaches ``max_n``; see
        :mod:`hierclass.smoothing.sequential.sessions`). The ``n0`` selection draws are never
        reused.

        Parameters
        ----------
        x : Tensor, shape [...]
            One input without batch dimension (or a dict of modalities).
        radii : sequence of float
            Distinct finite radii ``>= 0`` (L2, in input units).
        n0 : int
            Selection draws.
        max_n : int
            At most this many estimation draws.
        alpha : float
            Failure probability, shared by all radii and all looks.
        batch_size : int or "auto"
            Draws per forward pass.
        index : int or None, keyword-only
            The noise index (``None``: a fresh one, see :meth:`certify`).
        subsets : iterable of sequences of int, optional, keyword-only
            Label subsets to certify within from the same draws (each at ``alpha`` on its
            own, as in :meth:`certify_many`); sampling goes on until every one is decided.

        Returns
        -------
        RadiiResult
            ``label`` (or ``Smooth.ABSTAIN``), ``certified`` (bool per radius),
            ``n_samples`` (estimation draws used), the bounds and counts; with ``subsets``
            also ``subset_labels`` and ``subset_certified`` (``[subsets, radii]``).

        Examples
        --------
        >>> s = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=0.5)
        >>> r = s.certify_radii(torch.tensor([1.0, 0.0]), [0.0, 0.5, 1.5], max_n=20_000,
        ...                     batch_size=4096)
        >>> r.label, r.certified.tolist(), r.n_samples < 20_000  # exact radius: 1.0
        (0, [True, True, False], True)
        """

        return certify_radii(
            self, x, radii, n0, max_n, alpha, batch_size, index=noise_index(index), subsets=subsets
        )

    def certify_iss(
        self,
        x: Any,
        radius_loss: float = 0.05,
        n0: int = 100,
        max_n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
        n_pilot: int = 1000,
        pilot_alpha: float = 0.001,
    ) -> ISSResult:
        """Cohen's certificate with an input-specific sample size (ISS, Chen et al. 2022).

        A pilot of ``n_pilot`` draws picks the smallest ``n <= max_n`` whose expected radius
        is within ``radius_loss`` of ``max_n`` draws' (see :mod:`hierclass.smoothing.flat.iss`);
        the certificate comes from ``n`` fresh draws: a ``1 - alpha`` Clopper-Pearson bound,
        exactly as in :meth:`certify` (the pilot only chooses ``n``).

        Returns
        -------
        ISSResult
            ``label``, ``radius``, ``n_samples`` (final draws), ``total_samples`` and
            ``loss_bound`` (the planned radius loss vs ``max_n``).

        Examples
        --------
        >>> s = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=0.5)
        >>> r = s.certify_iss(torch.tensor([1.0, 0.0]), radius_loss=0.05, batch_size=4096)
        >>> r.label, r.n_samples < 100_000, 0.8 < r.radius < 1.0, r.loss_bound <= 0.05
        (0, True, True, True)
        """

        (res,) = certify_iss_many(
            self,
            [x],
            radius_loss,
            n0,
            max_n,
            alpha,
            batch_size,
            indices=[noise_index(index)],
            n_pilot=n_pilot,
            pilot_alpha=pilot_alpha,
        )
        return res
