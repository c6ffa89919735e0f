"""Batch scoring on Dask: map_partitions over a LocalCluster of worker processes gives the rows
of a single-process recommend."""

import pandas as pd
import pytest

import carma

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("dask.distributed")

from carma.dask import recommend_partitions  # noqa: E402


def test_dask_local_cluster_gives_the_single_process_rows(loan, model):
    df, _ = loan
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        ddf = dd.from_pandas(df, npartitions=4)
        out = recommend_partitions(model, ddf, forbid=["education"]).compute()
        assert client.run(lambda: 1)  # the workers are separate processes
    single = model.recommend(df, forbid=["education"])
    # Partitions have their own categories for the feature-set columns: compare the values.
    texts = ["status", "actions", "consequences", "bound_by_limit", "out_of_range"]
    out, single = (f.sort_index().astype({c: str for c in texts}) for f in (out, single))
    assert len(out) == len(df)
    pd.testing.assert_frame_equal(out, single)
