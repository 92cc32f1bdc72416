"""Private helpers shared by the rooms: one home each (argument checks, a model's device and
train/eval mode, the progress-bar policy). Public code validates at its boundary with these;
nothing here is part of the public API."""
