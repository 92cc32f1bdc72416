"""The road-sign simulator's guts (:mod:`hierclass.data.roadsigns` is the public room):
``plate`` (plate shapes and sizes), ``camera`` (rendering the image crops), ``lidar``
(scanning the plate into a point cloud)."""
