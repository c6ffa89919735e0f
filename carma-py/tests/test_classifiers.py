"""Brought classifiers: imported exactly (the model's probabilities are the classifier's to
1e-6), or refused saying what is supported."""

import collections
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import carma

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

#: The issue's bound: the bundle's probabilities equal the classifier's to this.
EXACT = 1e-6


def _probs_agree(model, df, expected):
    got = model.recommend(df)["prob_before"].to_numpy(dtype=np.float64)
    worst = np.max(np.abs(got - expected))
    assert worst < EXACT, f"largest probability difference {worst:.2e}"


def _fit_quiet(est, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y)


@pytest.fixture(scope="module")
def data(loan):
    df, graph = loan
    # A shuffled column order: the classifier's own feature names say which input is which.
    cols = list(reversed(graph.names))
    return df, graph, df[cols], df["y"]


def test_logistic_regression_is_imported_exactly(data):
    df, graph, x, y = data
    clf = _fit_quiet(LogisticRegression(max_iter=500), x, y)
    model = carma.fit(df, graph, classifier=clf, epochs_scale=0.02, progress=False)
    _probs_agree(model, df.head(500), clf.predict_proba(x.head(500))[:, 1])


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_mlp_classifier_is_imported_exactly(data, activation):
    df, graph, x, y = data
    clf = _fit_quiet(MLPClassifier(hidden_layer_sizes=(12, 6), activation=activation,
                                   max_iter=60, random_state=0), x, y)
    model = carma.fit(df, graph, classifier=clf, epochs_scale=0.02, progress=False)
    _probs_agree(model, df.head(500), clf.predict_proba(x.head(500))[:, 1])


@pytest.mark.parametrize("final", ["logistic", "mlp"])
def test_standard_scaler_pipeline_is_imported_exactly(data, final):
    df, graph, x, y = data
    est = LogisticRegression(max_iter=500) if final == "logistic" else MLPClassifier(
        hidden_layer_sizes=(10,), activation="tanh", max_iter=80, random_state=1)
    clf = _fit_quiet(make_pipeline(StandardScaler(), est), x, y)
    model = carma.fit(df, graph, classifier=clf, epochs_scale=0.02, progress=False)
    _probs_agree(model, df.head(500), clf.predict_proba(x.head(500))[:, 1])


def test_a_classifier_fitted_on_a_subset_of_the_features_ignores_the_rest(data):
    df, graph, _, y = data
    sub = df[["income", "savings", "age"]]
    clf = _fit_quiet(LogisticRegression(max_iter=500), sub, y)
    model = carma.fit(df, graph, classifier=clf, epochs_scale=0.02, progress=False)
    _probs_agree(model, df.head(300), clf.predict_proba(sub.head(300))[:, 1])


def test_the_accepted_class_can_be_the_first(data):
    df, graph, x, _ = data
    labels = np.where(df["y"] == 1, "approve", "deny")
    clf = _fit_quiet(LogisticRegression(max_iter=500), x, labels)
    # classes_ are sorted: ['approve', 'deny'], so the accepted class is classes_[0].
    model = carma.fit(df, graph, classifier=clf, epochs_scale=0.02, progress=False,
                      positive_class="approve")
    _probs_agree(model, df.head(300), clf.predict_proba(x.head(300))[:, 0])


def test_unsupported_classifiers_are_refused_saying_what_is_supported(data):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import MinMaxScaler

    df, graph, x, y = data
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    three = np.asarray(df["y"]) + (df["age"] > 40).to_numpy()
    multiclass = _fit_quiet(LogisticRegression(max_iter=200), x, three)
    minmax = _fit_quiet(make_pipeline(MinMaxScaler(), LogisticRegression()), x, y)
    for clf, why in [
        (forest, "this estimator type is not supported"),
        (multiclass, "3 classes, not 2"),
        (minmax, "StandardScaler followed by the classifier"),
        (LogisticRegression(), "not fitted"),
        (object(), "neither a scikit-learn estimator nor a PyTorch nn.Sequential"),
    ]:
        with pytest.raises(carma.UnsupportedClassifierError, match=why) as e:
            carma.fit(df, graph, classifier=clf, epochs_scale=0.02, progress=False)
        assert "supported: scikit-learn LogisticRegression or MLPClassifier" in str(e.value)
        assert isinstance(e.value, TypeError)


# A stand-in with PyTorch's interface (named_children, state_dict of arrays keyed "0.weight",
# ...), so the conversion runs in CI without torch.
class Linear:
    def __init__(self, w, b):
        self.weight, self.bias = w, b


class ReLU:
    pass


class Tanh:
    pass


class Sigmoid:
    pass


class Softplus:
    pass


class Sequential:
    def __init__(self, *modules):
        self.modules = modules

    def named_children(self):
        return [(str(k), m) for k, m in enumerate(self.modules)]

    def state_dict(self):
        d = collections.OrderedDict()
        for k, m in enumerate(self.modules):
            if isinstance(m, Linear):
                d[f"{k}.weight"], d[f"{k}.bias"] = m.weight, m.bias
        return d


def _numpy_forward(modules, x):
    h = x
    for m in modules:
        if isinstance(m, Linear):
            h = h @ m.weight.T + m.bias
        elif isinstance(m, ReLU):
            h = np.maximum(h, 0)
        elif isinstance(m, Tanh):
            h = np.tanh(h)
        elif isinstance(m, Sigmoid):
            h = 1 / (1 + np.exp(-h))
    return h[:, 0]


@pytest.mark.parametrize("act,end", [(ReLU, "logit"), (Tanh, "sigmoid"), (Sigmoid, "logit")])
def test_torch_style_sequential_state_dict_is_read_exactly(data, act, end):
    df, graph, _, _ = data
    rng = np.random.default_rng(4)
    d = len(graph.names)
    x = df[graph.names].to_numpy()
    scale = 1 / x.std(axis=0)
    mods = [Linear(rng.normal(size=(8, d)) * scale * 0.5, rng.normal(size=8)), act(),
            Linear(rng.normal(size=(1, 8)), np.array([0.1]))]
    if end == "sigmoid":
        mods.append(Sigmoid())
    net = Sequential(*mods)
    model = carma.fit(df, graph, classifier=net, epochs_scale=0.02, progress=False)
    out = _numpy_forward(mods, x[:400])
    p = out if end == "sigmoid" else 1 / (1 + np.exp(-out))
    _probs_agree(model, df.head(400), p)
    doc = carma.to_classifier_json(net, graph.names)
    assert doc["hidden_activation"] == {ReLU: "relu", Tanh: "tanh", Sigmoid: "logistic"}[act]


def test_unsupported_torch_style_networks_are_refused(data):
    df, graph, _, _ = data
    d = len(graph.names)
    w = np.ones((4, d)) * 0.01
    cases = [
        (Sequential(Linear(w, np.zeros(4)), Softplus(), Linear(np.ones((1, 4)), np.zeros(1))), "layer 1 is Softplus"),
        (Sequential(Linear(w, np.zeros(4)), ReLU(), Linear(np.ones((2, 4)), np.zeros(2))), "2 outputs, not one logit"),
        (Sequential(Linear(w, np.zeros(4)), ReLU(), Linear(np.ones((4, 4)), np.zeros(4)), Tanh(), Linear(np.ones((1, 4)), np.zeros(1))), "mixes activations"),
    ]
    for net, why in cases:
        with pytest.raises(carma.UnsupportedClassifierError, match=why):
            carma.fit(df, graph, classifier=net, epochs_scale=0.02, progress=False)


def test_real_torch_sequential_if_installed(data):
    torch = pytest.importorskip("torch", reason="torch is not installed here (not a CI "
                                "requirement); the stand-in tests above cover the conversion")
    df, graph, _, _ = data
    torch.manual_seed(0)
    d = len(graph.names)
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
                              torch.nn.Sigmoid()).double()
    model = carma.fit(df, graph, classifier=net, epochs_scale=0.02, progress=False)
    with torch.no_grad():
        p = net(torch.tensor(df[graph.names].to_numpy()[:300])).numpy()[:, 0]
    _probs_agree(model, df.head(300), p)


def test_the_cli_reads_the_json_the_python_side_writes(data, tmp_path, carma_cli):
    import subprocess

    df, graph, x, y = data
    clf = _fit_quiet(MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", max_iter=40,
                                   random_state=2), x, y)
    (tmp_path / "clf.json").write_text(json.dumps(carma.to_classifier_json(clf, graph.names)))
    df.to_csv(tmp_path / "d.csv", index=False)
    graph.save(tmp_path / "g.toml")
    subprocess.run([carma_cli, "fit", "--data", str(tmp_path / "d.csv"), "--graph",
                    str(tmp_path / "g.toml"), "--classifier-json", str(tmp_path / "clf.json"),
                    "--epochs-scale", "0.02", "-o", str(tmp_path / "m.carma")],
                   check=True, capture_output=True)
    model = carma.Model.load(tmp_path / "m.carma")
    _probs_agree(model, df.head(300), clf.predict_proba(x.head(300))[:, 1])
    (tmp_path / "bad.json").write_text('{"format": "carma-classifier", "version": 1}')
    run = subprocess.run([carma_cli, "fit", "--data", str(tmp_path / "d.csv"), "--graph",
                          str(tmp_path / "g.toml"), "--classifier-json", str(tmp_path / "bad.json"),
                          "-o", str(tmp_path / "m2.carma")], capture_output=True, text=True)
    assert run.returncode == 1 and "missing field" in run.stderr and "supported: " in run.stderr
