"""Batch scoring of a large table on Dask (a ``dask.distributed`` cluster of worker processes,
on one machine or many).

The model is small bytes (tens of kilobytes), so each task receives the bytes, not a path a
worker might not see, and each worker process decodes them once and keeps the model::

    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster
    import carma
    from carma.dask import recommend_partitions

    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster):
        people = dd.read_parquet("people/")
        out = recommend_partitions(model, people, forbid=["education"]).compute()
"""

import pandas as pd

from . import Model

#: Models decoded in this worker process, by their bytes.
_CACHE = {}


def _model(data):
    m = _CACHE.get(data)
    if m is None:
        _CACHE.clear()
        m = _CACHE[data] = Model.from_bytes(data, "dask")
    return m


def _partition(part, data, forbid, limits, threads):
    return _model(data).recommend(part, forbid=forbid, limits=limits, threads=threads)


def recommend_partitions(model, ddf, forbid=None, limits=None, threads=1, token=None):
    """``model.recommend`` on every partition of the Dask DataFrame ``ddf``
    (``dask.dataframe.map_partitions``), with the same columns and index as a single-process
    call. ``threads`` per task (default 1: Dask runs one task per worker thread). ``token``
    names the output collection (Dask derives one from the arguments otherwise, so the same
    call twice may reuse results still held by the cluster)."""
    data = model.to_bytes()
    meta = model.recommend(ddf._meta if len(ddf._meta) else _empty(ddf, model))
    return ddf.map_partitions(_partition, data, forbid, limits, threads, meta=meta, token=token)


def _empty(ddf, model):
    return pd.DataFrame({f: pd.Series([], dtype="float64") for f in model.features})
