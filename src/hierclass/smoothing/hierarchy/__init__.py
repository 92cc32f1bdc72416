"""Smoothing a :class:`~hierclass.Hierarchy`: every node on the path, certified together.

:mod:`.smooth` holds :class:`~.smooth.HierarchicalSmooth` (two-phase sampling of the whole
tree), :mod:`.plan` decides which node is smoothed, clean or constant and which models run
once per draw for several nodes, and :mod:`.sequential` certifies a hierarchy at given
radii with confidence sequences.
"""
