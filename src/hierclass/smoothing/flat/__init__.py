"""The flat smoothed classifier: Cohen et al.'s :class:`~.smooth.Smooth`, its results and ISS.

:mod:`.smooth` keeps the reference API (``predict``, ``certify``, ``ABSTAIN``) and adds
batched, sequential and input-specific certification; :mod:`.result` is what the batched
calls return; :mod:`.iss` is input-specific sampling (Chen et al. 2022).
"""
