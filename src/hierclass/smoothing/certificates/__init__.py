"""Certificates from counts: the pure statistics, below everything else in smoothing.

Clopper-Pearson bounds and Cohen's radius (:mod:`.bounds`), a certificate from two vote
vectors (:mod:`.counts`), label subsets (:mod:`.subsets`), the mixture confidence sequences
of sequential certification (:mod:`.confidence_sequences`) and a hierarchy path's
certificate from its nodes' votes (:mod:`.path`). Nothing here samples, reads a model or
writes a file; every function is exact on its inputs and tested against closed forms.
"""
