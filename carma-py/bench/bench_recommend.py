"""Python `Model.recommend` on 1 M Loan rows against the `carma` command and the Rust batch API,
in rows per second, in the same run (docs/PYTHON.md has the numbers and the command).

    python carma-py/bench/bench_recommend.py [--rows 1000000] [--out bench-results.json]

Run from the repository root with the package installed (./test makes target/venv) and the CLI
and the example built in release:
    cargo build --release -p carma-cli
    cargo build --release -p carma-train --example batch_throughput

The model is the paper-sized Loan bundle of fixtures/bench. Three settings:
- refined (the default of both the CLI and Python): Python DataFrame -> DataFrame, Python numpy
  arrays, `carma recommend --format csv` (CSV in, CSV out);
- unrefined: the same two and the Rust batch API (`recommend_parallel`, which never refines);
- Dask: `carma.dask.recommend_partitions` on a LocalCluster of 2 worker processes.
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import carma

ROOT = pathlib.Path(__file__).resolve().parents[2]


def best_of(f, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        result = f()
        best = min(best, time.perf_counter() - t)
    return best, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    n = args.rows
    model_path = ROOT / "fixtures" / "bench" / "loan.carma"
    model = carma.Model.load(model_path)
    df, graph = carma.simulate("loan", n=n, seed=11)
    people = df[graph.names]
    x = np.ascontiguousarray(people.to_numpy(dtype=np.float32).astype(np.float64))
    people = people.astype(np.float32).astype(np.float64)
    results = {"rows": n, "cores": os.cpu_count(), "model": str(model_path.relative_to(ROOT))}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    for refine in (True, False):
        key = "refined" if refine else "unrefined"
        limits = {"refine": refine}
        t, out = best_of(lambda: model.recommend(people, limits=limits), args.repeats)
        results[f"python_dataframe_{key}"] = n / t
        t, _ = best_of(lambda: model.recommend_arrays(x, limits=limits), args.repeats)
        results[f"python_arrays_{key}"] = n / t
        if refine:
            results["accepted_after_refined"] = float(out["accepted_after"].mean())
    results["python_peak_rss_growth_mb"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        csv = tmp / "people.csv"
        with open(csv, "w") as f:
            f.write(",".join(graph.names) + "\n")
            np.savetxt(f, x.astype(np.float32), delimiter=",", fmt="%.9g")
        cli = ROOT / "target" / "release" / "carma"
        for refine in (True, False):
            key = "refined" if refine else "unrefined"
            cmd = [str(cli), "recommend", "--model", str(model_path), "--input", str(csv),
                   "--format", "csv", "-o", str(tmp / "out.csv"), "--force"]
            if not refine:
                cmd.append("--no-refine")
            t, _ = best_of(lambda: subprocess.run(cmd, check=True, capture_output=True),
                           args.repeats)
            results[f"cli_csv_{key}"] = n / t
        raw = tmp / "rows.f32"
        x.astype("<f4").tofile(raw)
        example = ROOT / "target" / "release" / "examples" / "batch_throughput"
        run = subprocess.run([str(example), str(model_path), str(raw), str(args.repeats)],
                             check=True, capture_output=True, text=True)
        results["rust_batch_api_unrefined"] = json.loads(run.stdout)["rows_per_second"]

    try:
        import dask.dataframe as dd
        from dask.distributed import Client, LocalCluster

        from carma.dask import recommend_partitions

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            ddf = dd.from_pandas(people, npartitions=8).persist()
            # A new token per repeat: the same graph twice could reuse results still on the
            # workers.
            runs = iter(range(args.repeats))
            t, out = best_of(lambda: recommend_partitions(
                model, ddf, token=f"carma-bench-{next(runs)}").compute(), args.repeats)
            assert len(out) == n
            results["dask_2_processes_refined"] = n / t
    except ImportError as e:
        results["dask_2_processes_refined"] = f"skipped: {e}"

    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
