"""The sampling engine: noise, batches and the forward passes that turn inputs into votes.

Per-sample noise streams (:mod:`.noise`), the count engine that packs draws of many inputs
into batches (:mod:`.sampling`), the batch-size probe (:mod:`.batch_size`), mixed precision
(:mod:`.precision`), checks and noise indices shared by every smoother (:mod:`.prepare`) and
the flat model's engine (:mod:`.flat_engine`). It imports only :mod:`..certificates`.
"""
