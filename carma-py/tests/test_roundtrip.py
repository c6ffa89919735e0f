"""simulate -> fit -> save -> load -> recommend, and the same answers as the carma command."""

import csv
import io
import subprocess

import numpy as np
import pandas as pd
import pytest

import carma


def test_simulate_gives_the_loan_table_and_graph(loan):
    df, graph = loan
    assert graph.names == ["gender", "age", "education", "loan_amount", "duration", "income",
                           "savings"]
    assert list(df.columns) == graph.names + ["y"]
    assert len(df) == 1500 and set(df["y"].unique()) <= {0, 1}
    again, _ = carma.simulate("loan", n=1500, seed=3)
    pd.testing.assert_frame_equal(df, again)


def test_fit_save_load_recommend_round_trip(loan, model, tmp_path):
    df, graph = loan
    path = tmp_path / "loan.carma"
    model.save(path)
    loaded = carma.Model.load(path)
    assert loaded.to_bytes() == model.to_bytes()
    info = loaded.info()
    assert info["dataset"] == "DataFrame" and info["recommends"] is True
    assert [f["name"] for f in info["features"]] == graph.names
    assert info["sizes"]["file_bytes"] == len(model.to_bytes())
    out = loaded.recommend(df.head(200), forbid=["education"])
    assert len(out) == 200 and (out.index == df.head(200).index).all()
    assert set(out["status"].unique()) <= set(carma.STATUSES)
    rejected = ~out["accepted_before"]
    assert rejected.any() and (out["accepted_before"] == (out["prob_before"] >= 0.5)).all()
    # Education is forbidden: never an action.
    assert not out["actions"].astype(str).str.contains("education").any()
    helped = out[out["status"] == "accepted after the recommendation"]
    assert len(helped) > 0 and (helped["prob_after"] >= 0.5).all() and (helped["cost"] > 0).all()
    # An already accepted person keeps their values.
    kept = out[out["accepted_before"]]
    for f in graph.names:
        np.testing.assert_array_equal(kept[f"{f}_recommended"],
                                      df.loc[kept.index, f].astype(np.float32))


def test_same_seed_same_model_bytes(loan, model):
    df, graph = loan
    again = carma.fit(df, graph, seed=5, epochs_scale=0.02, progress=False)
    assert again.to_bytes() == model.to_bytes()


def test_recommend_one_matches_the_batch_row(loan, model):
    df, graph = loan
    out = model.recommend(df.head(400))
    k = int(np.flatnonzero(out["status"] == "accepted after the recommendation")[0])
    one = model.recommend_one(df.iloc[k].to_dict())
    row = out.iloc[k]
    assert one["status"] == row["status"] and one["prob_after"] == row["prob_after"]
    assert [a["feature"] for a in one["actions"]] == row["actions"].split(";")
    for a in one["actions"]:
        assert a["to"] == row[f"{a['feature']}_recommended"]
        assert a["from"] == np.float32(df.iloc[k][a["feature"]])


def test_limits_are_applied_as_by_the_cli(loan, model):
    df, _ = loan
    out = model.recommend(df.head(300), limits={"max_changes": 1, "increase_only": ["income"]})
    assert (out["n_changes"] <= 1).all()
    moved = out["actions"] == "income"
    assert (out.loc[moved, "income_recommended"] >= df.head(300).loc[moved, "income"].astype(np.float32)).all()
    with pytest.raises(carma.LimitError, match="unknown feature 'wealth'"):
        model.recommend(df.head(3), forbid=["wealth"])
    with pytest.raises(carma.LimitError, match="both increase_only and decrease_only"):
        model.recommend(df.head(3), limits={"increase_only": ["income"], "decrease_only": ["income"]})
    with pytest.raises(carma.LimitError, match="between 0.5 and 1"):
        model.recommend(df.head(3), limits={"min_prob": 0.2})
    with pytest.raises(carma.LimitError, match="unknown key 'maximum'"):
        model.recommend(df.head(3), limits={"maximum": 3})


def _parse_cli_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_python_and_the_cli_give_bit_identical_recommendations(loan, model, tmp_path, carma_cli):
    df, graph = loan
    rows = df.head(400)
    model_path = tmp_path / "m.carma"
    model.save(model_path)
    # Values written as the exact decimals of their f32, so both sides read the same floats.
    x32 = rows[graph.names].to_numpy(dtype=np.float32)
    with open(tmp_path / "people.csv", "w") as f:
        f.write(",".join(graph.names) + "\n")
        for r in x32:
            f.write(",".join(repr(float(v)) for v in r) + "\n")
    run = subprocess.run(
        [carma_cli, "recommend", "--model", str(model_path), "--input", str(tmp_path / "people.csv"),
         "--format", "csv", "--forbid", "education", "--max-changes", "2"],
        capture_output=True, text=True, check=True,
    )
    cli = _parse_cli_csv(run.stdout)
    ours = model.recommend(pd.DataFrame(x32.astype(np.float64), columns=graph.names),
                           forbid=["education"], limits={"max_changes": 2})
    assert len(cli) == len(ours) == 400
    for k, c in enumerate(cli):
        o = ours.iloc[k]
        assert c["status"] == o["status"]
        for key in ["prob_before", "prob_after", "cost", "cost_unrefined"]:
            assert np.float32(c[key]) == o[key], (k, key)
        assert c["actions"] == o["actions"] and c["consequences"] == o["consequences"], k
        for f in graph.names:
            assert np.float32(c[f"{f}_recommended"]) == o[f"{f}_recommended"], (k, f)


def test_progress_reaches_a_callback_and_printed_lines(loan, capsys):
    df, graph = loan
    events = []
    carma.fit(df, graph, epochs_scale=0.01, progress=events.append)
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages == ["data", "classifier", "causal flow", "CARMA"]
    epochs = [e for e in events if e["event"] == "epoch" and e["stage"] == "CARMA"]
    assert epochs and epochs[-1]["epoch"] == epochs[-1]["epochs"]
    assert all(np.isfinite(e["loss"]) for e in epochs)
    carma.fit(df, graph, epochs_scale=0.01, progress="print")
    err = capsys.readouterr().err
    assert "carma: classifier: training" in err and "carma: CARMA: coverage" in err


def test_a_model_pickles_as_its_bytes(model):
    import pickle

    again = pickle.loads(pickle.dumps(model))
    assert again.to_bytes() == model.to_bytes()
    assert len(pickle.dumps(model)) < 2 * len(model.to_bytes())


def test_recommend_one_gives_alternatives_with_other_feature_sets(loan, model):
    df, _ = loan
    out = model.recommend(df.head(400))
    helped = np.flatnonzero(out["status"] == "accepted after the recommendation")
    seen = 0
    for k in helped[:20]:
        one = model.recommend_one(df.iloc[int(k)].to_dict(), alternatives=3)
        sets = [frozenset(a["feature"] for a in one["actions"])]
        sets += [frozenset(a["feature"] for a in alt["actions"]) for alt in one["alternatives"]]
        assert len(set(sets)) == len(sets), "each alternative changes a different set"
        costs = [alt["cost"] for alt in one["alternatives"]]
        assert costs == sorted(costs)
        seen += len(one["alternatives"])
    assert seen > 0
    with pytest.raises(carma.LimitError, match="alternatives: expected 0 to 16"):
        model.recommend_one(df.iloc[0].to_dict(), alternatives=17)


def test_changes_lists_each_changed_feature_with_from_and_to(loan, model):
    df, graph = loan
    people = df.head(300)
    out = model.recommend(people)
    long = carma.changes(people, out)
    helped = out[out["status"] == "accepted after the recommendation"]
    assert set(long.index) == set(helped.index)
    for i in helped.index[:30]:
        rows = long.loc[[i]]
        acts = rows[rows["role"] == "action"]
        assert ";".join(acts["feature"]) == helped.loc[i, "actions"]
        for _, r in rows.iterrows():
            assert r["from"] == np.float32(people.loc[i, r["feature"]])
            assert r["to"] == helped.loc[i, f"{r['feature']}_recommended"]
