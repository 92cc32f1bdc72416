"""Tables and metrics over stored results: certified accuracy, ACR, per-class and per-level.

Curves and comparison tables (:mod:`.tables`), hierarchical precision, recall, F1 and
mistake severity (:mod:`.hierarchy_metrics`), per-level certified accuracy and the results
object of a hierarchy run (:mod:`.hierarchy_results`), and the certified information gain
(:mod:`.information_gain`). Reads tables only; never samples.
"""
