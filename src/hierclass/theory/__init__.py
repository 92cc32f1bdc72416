"""Theory: the Tsipras et al. setting with an invariant (App. C) and the PRF/ECC toy (§III-C).

Examples
--------
>>> from hierclass.theory import meta_feature_accuracy, theorem1_bound
>>> round(meta_feature_accuracy(4, 0.5), 4), round(theorem1_bound(0.99, 0.95), 2)
(0.8413, 0.19)
"""

from hierclass.theory.fig9 import fig9_markdown, fig9_table, plot_fig9
from hierclass.theory.prf_ecc import PRFECCTask, prf_ecc_comparison
from hierclass.theory.simulation import SimulatedAccuracy, simulate_accuracy
from hierclass.theory.tsipras import (
    LinearRule,
    TsiprasDistribution,
    linear_rule_accuracy,
    meta_feature_accuracy,
    meta_feature_rule,
    min_protected_features,
    restricted_linf_attack,
    robust_rule,
    robust_rule_accuracy,
    standard_rule,
    theorem1_bound,
)

__all__ = [
    "LinearRule",
    "PRFECCTask",
    "SimulatedAccuracy",
    "TsiprasDistribution",
    "fig9_markdown",
    "fig9_table",
    "linear_rule_accuracy",
    "meta_feature_accuracy",
    "meta_feature_rule",
    "min_protected_features",
    "plot_fig9",
    "prf_ecc_comparison",
    "restricted_linf_attack",
    "robust_rule",
    "robust_rule_accuracy",
    "simulate_accuracy",
    "standard_rule",
    "theorem1_bound",
]
