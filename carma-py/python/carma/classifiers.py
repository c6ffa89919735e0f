"""Brought classifiers: scikit-learn and PyTorch models written in carma's classifier JSON
layout (documented in carma-cli/README.md, read by ``carma fit --classifier-json``).

Exactly what is supported, imported without retraining or approximation:

- ``sklearn.linear_model.LogisticRegression`` (binary);
- ``sklearn.neural_network.MLPClassifier`` (binary; ``relu``, ``tanh``, ``logistic`` or
  ``identity`` activation);
- ``sklearn.pipeline.Pipeline`` of a ``StandardScaler`` followed by one of them;
- a PyTorch ``nn.Sequential`` of ``Linear`` and ``ReLU``/``Tanh``/``Sigmoid`` layers, one
  activation kind throughout, ending in one logit (a ``Linear`` with one output) or in a
  ``Sigmoid`` after it. It is read through ``state_dict()`` and the module list, so torch is
  not a dependency.

Anything else raises :class:`carma.errors.UnsupportedClassifierError` saying what is supported.
"""

import json

import numpy as np

from .errors import ClassifierError, UnsupportedClassifierError

SUPPORTED = (
    "supported: scikit-learn LogisticRegression or MLPClassifier (binary; relu, tanh, logistic "
    "or identity activation), a Pipeline of StandardScaler followed by one of them, or a "
    "PyTorch nn.Sequential of Linear and ReLU/Tanh/Sigmoid layers ending in one logit or a "
    "Sigmoid"
)

_TORCH_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "logistic"}


def _qualname(obj):
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _refuse(obj, why):
    raise UnsupportedClassifierError(f"cannot import {_qualname(obj)}: {why} ({SUPPORTED})")


def _feature_names(est, default):
    names = getattr(est, "feature_names_in_", None)
    n_in = getattr(est, "n_features_in_", None)
    if names is not None:
        return [str(n) for n in names]
    if n_in is not None and n_in != len(default):
        raise ClassifierError(
            f"the classifier was fitted on {n_in} unnamed columns but the graph has "
            f"{len(default)} features ({', '.join(default)}); fit it on a DataFrame with the "
            "graph's column names, or on the graph's columns in the graph's order"
        )
    return list(default)


def _binary_classes(est):
    classes = getattr(est, "classes_", None)
    if classes is None:
        _refuse(est, "it is not fitted")
    if len(classes) != 2:
        _refuse(est, f"it has {len(classes)} classes, not 2")
    return classes


def _check_positive_class(est, positive):
    classes = list(_binary_classes(est))
    if positive not in classes:
        raise ClassifierError(
            f"the classifier's classes are {classes}; the accepted (positive) class {positive!r} "
            "is not among them"
        )
    # scikit-learn's probability of classes_[1] is the logistic function of the logit; flip the
    # sign of the last layer when the accepted class is classes_[0].
    return 1.0 if classes.index(positive) == 1 else -1.0


def _layers_sklearn(est, positive):
    from_name = type(est).__name__
    if from_name == "LogisticRegression":
        sign = _check_positive_class(est, positive)
        coef = np.asarray(est.coef_, dtype=np.float64)
        if coef.shape[0] != 1:
            _refuse(est, "it is not binary")
        return "identity", [(sign * coef, sign * np.asarray(est.intercept_, dtype=np.float64))]
    if from_name == "MLPClassifier":
        sign = _check_positive_class(est, positive)
        act = est.activation
        if act not in ("relu", "tanh", "logistic", "identity"):
            _refuse(est, f"activation '{act}'")
        if getattr(est, "out_activation_", "logistic") != "logistic":
            _refuse(est, f"output activation '{est.out_activation_}'")
        layers = [
            (np.asarray(w, dtype=np.float64).T, np.asarray(b, dtype=np.float64))
            for w, b in zip(est.coefs_, est.intercepts_)
        ]
        w, b = layers[-1]
        if w.shape[0] != 1:
            _refuse(est, "its output layer has more than one unit")
        layers[-1] = (sign * w, sign * b)
        return act, layers
    _refuse(est, "this estimator type is not supported")


def _from_sklearn(est, names, positive):
    scaler = None
    final = est
    if type(est).__name__ == "Pipeline":
        steps = [s for _, s in est.steps if s not in (None, "passthrough")]
        if len(steps) == 1:
            final = steps[0]
        elif len(steps) == 2 and type(steps[0]).__name__ == "StandardScaler":
            sc, final = steps
            n = sc.n_features_in_
            mean = sc.mean_ if sc.with_mean and sc.mean_ is not None else np.zeros(n)
            scale = sc.scale_ if sc.with_std and sc.scale_ is not None else np.ones(n)
            scaler = {
                "mean": np.asarray(mean, dtype=np.float64).tolist(),
                "scale": np.asarray(scale, dtype=np.float64).tolist(),
            }
        else:
            _refuse(est, "a Pipeline must be a StandardScaler followed by the classifier")
        feature_names = _feature_names(steps[0], names)
    else:
        feature_names = _feature_names(est, names)
    act, layers = _layers_sklearn(final, positive)
    return _document(_qualname(final), feature_names, scaler, act, layers)


def _from_torch(model, names):
    named = list(model.named_children())
    keys = [name for name, _ in named]
    modules = [m for _, m in named]
    if not modules:
        _refuse(model, "it has no layers")
    state = model.state_dict()
    layers, acts = [], set()
    ends_in_sigmoid = False
    for k, m in enumerate(modules):
        kind = type(m).__name__
        if kind == "Linear":
            w = np.asarray(_to_numpy(state[f"{keys[k]}.weight"]), dtype=np.float64)
            b = state.get(f"{keys[k]}.bias")
            b = np.zeros(w.shape[0]) if b is None else np.asarray(_to_numpy(b), dtype=np.float64)
            layers.append((w, b))
        elif kind in _TORCH_ACTIVATIONS:
            if k == len(modules) - 1 and kind == "Sigmoid":
                ends_in_sigmoid = True
                continue
            if not layers:
                _refuse(model, "it starts with an activation, not a Linear layer")
            acts.add(_TORCH_ACTIVATIONS[kind])
        elif kind in ("Identity", "Dropout", "Flatten"):
            # No effect at inference on a batch of feature rows.
            continue
        else:
            _refuse(model, f"layer {k} is {kind}")
    if not layers:
        _refuse(model, "it has no Linear layer")
    if len(acts) > 1:
        _refuse(model, f"it mixes activations {sorted(acts)}; use one kind throughout")
    n_hidden_acts = sum(
        1
        for k, m in enumerate(modules)
        if type(m).__name__ in _TORCH_ACTIVATIONS and not (ends_in_sigmoid and k == len(modules) - 1)
    )
    if n_hidden_acts != len(layers) - 1:
        _refuse(model, "every Linear layer but the last must be followed by one activation")
    if type(modules[-1]).__name__ not in ("Linear", "Sigmoid"):
        _refuse(model, "it must end in a Linear layer (the logit) or a Sigmoid after it")
    if layers[-1][0].shape[0] != 1:
        _refuse(model, f"its last Linear layer has {layers[-1][0].shape[0]} outputs, not one logit")
    n_in = layers[0][0].shape[1]
    if n_in != len(names):
        raise ClassifierError(
            f"the network has {n_in} inputs but the graph has {len(names)} features "
            f"({', '.join(names)}); its inputs are taken to be the graph's features in order"
        )
    act = acts.pop() if acts else "identity"
    return _document(_qualname(model), list(names), None, act, layers)


def _to_numpy(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def _document(source, features, scaler, act, layers):
    return {
        "format": "carma-classifier",
        "version": 1,
        "source": source,
        "features": features,
        "input_scaler": scaler,
        "hidden_activation": act,
        "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in layers],
    }


def to_classifier_json(classifier, feature_names, positive_class=1):
    """The classifier JSON document (a dict) for ``classifier``, whose inputs are
    ``feature_names`` unless it knows its own (scikit-learn's ``feature_names_in_``).

    ``positive_class`` is the scikit-learn class that means "accepted" (default 1). A dict
    already in the layout is checked and returned as is.
    """
    if isinstance(classifier, dict):
        if classifier.get("format") != "carma-classifier":
            raise ClassifierError(
                "a classifier dict must be in carma's classifier JSON layout "
                "(\"format\": \"carma-classifier\"; see carma-cli/README.md)"
            )
        return classifier
    module = type(classifier).__module__
    if module.startswith("sklearn."):
        return _from_sklearn(classifier, list(feature_names), positive_class)
    if hasattr(classifier, "state_dict") and hasattr(classifier, "named_children"):
        if type(classifier).__name__ != "Sequential":
            _refuse(classifier, "only nn.Sequential models are read")
        return _from_torch(classifier, list(feature_names))
    _refuse(classifier, "it is neither a scikit-learn estimator nor a PyTorch nn.Sequential")


def dumps(document):
    """The JSON text of a classifier document."""
    return json.dumps(document)


__all__ = ["to_classifier_json", "SUPPORTED"]
