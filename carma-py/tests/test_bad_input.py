"""Bad input raises the documented exception with the CLI's message, never a crash."""

import numpy as np
import pandas as pd
import pytest

import carma


def test_missing_column(loan, model):
    df, graph = loan
    with pytest.raises(carma.DataError, match=r"DataFrame: missing column 'income' \(the header has: gender, age"):
        model.recommend(df.drop(columns=["income"]).head(3))
    with pytest.raises(carma.DataError, match="missing column 'y'.*label=NAME"):
        carma.fit(df.drop(columns=["y"]), graph, progress=False)


def test_nan_names_the_row_and_column(loan, model):
    df, _ = loan
    bad = df.head(5).copy()
    bad.loc[3, "savings"] = np.nan
    with pytest.raises(carma.DataError, match=r"DataFrame: data row 4 \(index 3\), column 'savings': expected a finite number, found 'NaN'"):
        model.recommend(bad)
    bad = df.head(5).copy()
    bad.loc[1, "gender"] = 0.5
    with pytest.raises(carma.DataError, match="column 'gender': expected 0 or 1, found '0.5'"):
        model.recommend(bad)
    assert issubclass(carma.DataError, ValueError) and issubclass(carma.DataError, carma.CarmaError)


def test_wrong_dtype_and_categorical_columns(loan, model):
    df, graph = loan
    bad = df.head(5).copy()
    bad["income"] = bad["income"].astype(str)
    with pytest.raises(carma.ColumnTypeError, match="column 'income' has dtype"):
        model.recommend(bad)
    bad = df.head(5).copy()
    bad["gender"] = pd.Categorical(np.where(bad["gender"] == 1, "f", "m"))
    with pytest.raises(carma.ColumnTypeError, match="column 'gender' is categorical"):
        model.recommend(bad)
    with pytest.raises(TypeError):
        model.recommend(bad)
    with pytest.raises(carma.ColumnTypeError):
        carma.fit(bad.assign(y=1), graph, progress=False)


def test_too_few_rows_a_label_that_is_a_feature_and_extra_columns(loan):
    df, graph = loan
    with pytest.raises(carma.DataError, match="DataFrame: 5 data rows; fit needs at least 10"):
        carma.fit(df.head(5), graph, progress=False)
    with pytest.raises(carma.CarmaError, match="--label income: 'income' is a feature"):
        carma.fit(df, graph, label="income", progress=False)
    with pytest.raises(carma.DataError, match="column 'id' is not a feature.*ignore_extra=True"):
        carma.fit(df.assign(id=1), graph, progress=False, epochs_scale=0.01)


def test_graph_errors_and_files(tmp_path, loan):
    _, graph = loan
    with pytest.raises(FileNotFoundError):
        carma.Graph.from_toml(tmp_path / "nope.toml")
    with pytest.raises(FileNotFoundError):
        carma.Model.load(tmp_path / "nope.carma")
    (tmp_path / "bad.carma").write_bytes(b"not a model at all")
    with pytest.raises(carma.ModelError, match="bad.carma"):
        carma.Model.load(tmp_path / "bad.carma")
    cyclic = {"feature": [
        {"name": "a", "kind": "continuous", "actionable": True, "parents": ["b"]},
        {"name": "b", "kind": "continuous", "actionable": True, "parents": ["a"]},
    ]}
    with pytest.raises(carma.GraphError, match="cycle"):
        carma.Graph.from_dict(cyclic)
    path = tmp_path / "loan.toml"
    graph.save(path)
    assert carma.Graph.from_toml(path).names == graph.names
    # The same graph from a dict.
    g2 = carma.Graph.from_dict([{"name": "a", "kind": "continuous", "actionable": True, "parents": []}])
    assert g2.names == ["a"]


def test_a_value_beyond_f32_is_refused_by_row(loan, model):
    df, _ = loan
    bad = df.head(4).copy()
    bad.loc[2, "income"] = 1e300
    with pytest.raises(carma.DataError, match="DataFrame: row 3, column 'income': cannot recommend"):
        model.recommend(bad)


def test_arrays_and_bytes_are_checked_before_use(model):
    with pytest.raises(carma.DataError, match=r"expected a 2-D array with 7 columns"):
        model.recommend(np.zeros((3, 5)))
    with pytest.raises(carma.ColumnTypeError):
        model.recommend(np.array([["a"] * 7]))
    # A non-contiguous view is copied, not refused; a wrong width reaching the native side is.
    wide = np.zeros((4, 14))[:, ::2]
    assert len(model.recommend(wide)) == 4
    with pytest.raises(carma.DataError, match="expected 7 feature columns, found 3"):
        model._native.recommend_batch(np.zeros((2, 3)), [], [], [], [], [], None, True, 0.6,
                                      None, "array")
    for junk in [b"", b"CARMA\0\0\0" + bytes(100), bytes(range(256)) * 4]:
        with pytest.raises(carma.ModelError):
            carma.Model.from_bytes(junk)
    truncated = model.to_bytes()[:-7]
    with pytest.raises(carma.ModelError):
        carma.Model.from_bytes(truncated)
