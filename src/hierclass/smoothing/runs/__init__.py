"""Data-set drivers: certify many inputs, write resumable files, split over processes.

:mod:`.fixed_n` certifies a data set with a fixed number of draws (flat or hierarchy),
:mod:`.sequential` at given radii, both through :mod:`.loop` (the checks, outputs, resume and
loop they share), and :mod:`.distributed` shards either over processes and merges the shards.
The top layer of smoothing: nothing below imports it.
"""
