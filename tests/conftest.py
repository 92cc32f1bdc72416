"""Suite-wide settings.

Tests use tiny models, for which one intra-op thread is faster than two and is not slowed
down by whatever else runs on a shared 2-core machine. Benchmarks (bench/) keep torch's default.
"""

import torch

torch.set_num_threads(1)
