"""Sequential certification at given radii: sample until each radius is decided.

The looks and decisions of the confidence-sequence rule (:mod:`.decisions`), the flat
sessions that drive an input's draws (:mod:`.sessions`) and exact decision probabilities
of the rule for a known ``p`` (:mod:`.exact`). Built on :mod:`..engine` and
:mod:`..certificates`; the hierarchy's sequential certificates are in
:mod:`..hierarchy.sequential`.
"""
