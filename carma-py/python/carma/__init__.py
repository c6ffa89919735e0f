"""carma: causal algorithmic recourse (CARMA, FAccT 2024) for pandas users.

A rejected applicant asks what to change to be accepted; carma answers at once, and the answer
respects cause and effect (raising income also raises savings). Train once with :func:`fit` on
a DataFrame and a causal graph (optionally with your own scikit-learn or PyTorch classifier,
imported exactly), then :meth:`Model.recommend` a DataFrame of people: one row out per row in,
with the GIL released and every core used.

>>> import carma
>>> df, graph = carma.simulate("loan", n=2000, seed=1)
>>> model = carma.fit(df, graph, epochs_scale=0.02, progress=False)
>>> out = model.recommend(df.head(5), forbid=["education"])
>>> list(out.columns[:4])
['status', 'accepted_before', 'accepted_after', 'prob_before']
"""

import json
import os
import sys
import warnings

import numpy as np
import pandas as pd

from . import _carma
from .classifiers import SUPPORTED as SUPPORTED_CLASSIFIERS
from .classifiers import to_classifier_json
from .errors import (
    CarmaError,
    ClassifierError,
    ColumnTypeError,
    DataError,
    GraphError,
    LimitError,
    ModelError,
    TrainingError,
    UnsupportedClassifierError,
)

__all__ = [
    "simulate",
    "fit",
    "Graph",
    "Model",
    "STATUSES",
    "to_classifier_json",
    "changes",
    "SUPPORTED_CLASSIFIERS",
    "CarmaError",
    "ClassifierError",
    "ColumnTypeError",
    "DataError",
    "GraphError",
    "LimitError",
    "ModelError",
    "TrainingError",
    "UnsupportedClassifierError",
]

#: The ``status`` of a recommendation, as ``carma recommend`` words it.
STATUSES = (
    "already accepted",
    "accepted after the recommendation",
    "no recommendation within your limits",
    "not accepted",
)

#: Rows converted to arrays at a time in :meth:`Model.recommend`, so that a large DataFrame is
#: not copied whole before the work starts (memory stays proportional to the output).
CHUNK_ROWS = 1 << 18


class Graph:
    """A causal graph: features, their kinds, parents, actionability and bounds, validated as
    ``carma fit`` validates a graph file (a cycle, a self-loop, an unknown parent, a duplicate
    name raise :class:`GraphError` with the same message)."""

    def __init__(self, native):
        self._native = native

    @classmethod
    def from_toml(cls, path):
        """Read a graph file (TOML, see docs/loan-graph.toml). A missing file raises
        :class:`FileNotFoundError`."""
        return cls(_carma.Graph.from_toml(os.fspath(path)))

    @classmethod
    def from_toml_string(cls, text, source="<string>"):
        """Parse graph TOML text; ``source`` names it in errors."""
        return cls(_carma.Graph.from_toml_str(text, source))

    @classmethod
    def from_dict(cls, graph):
        """A graph from a dict with the file's keys, ``{"feature": [{"name": ..., "kind":
        ..., "actionable": ..., "parents": [...]}, ...]}``, or from the list of feature dicts
        itself."""
        if isinstance(graph, (list, tuple)):
            graph = {"feature": list(graph)}
        if not isinstance(graph, dict):
            raise GraphError(
                f"<dict>: expected a dict with a 'feature' list, found {type(graph).__name__}"
            )
        try:
            text = json.dumps(graph)
        except (TypeError, ValueError) as e:
            raise GraphError(f"<dict>: {e}") from None
        return cls(_carma.Graph.from_json_str(text, "<dict>"))

    @property
    def names(self):
        """Feature names, in the graph's column order."""
        return list(self._native.names)

    @property
    def binary(self):
        """Whether each feature is binary."""
        return list(self._native.binary)

    def to_toml(self):
        """The graph as TOML text (what ``carma simulate --graph`` writes)."""
        return self._native.to_toml()

    def save(self, path):
        """Write the graph file (TOML) atomically."""
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_toml())
        os.replace(tmp, path)

    def __len__(self):
        return len(self._native)

    def __repr__(self):
        return repr(self._native)


def simulate(dataset="loan", n=1000, seed=0):
    """Sample ``n`` rows of one of the built-in structural causal models (``loan``,
    ``triangle-lin``, ``triangle-nlin``, ``collider-lin``, ``collider-nlin``, ``chain-lin``,
    ``chain-nlin``; docs/MATH.md section 2) with seed ``seed``.

    Returns ``(df, graph)``: a DataFrame of the features and the 0/1 label ``y`` (as ``carma
    simulate`` writes them) and the dataset's :class:`Graph`.
    """
    names, x, y, graph = _carma.simulate(str(dataset), int(n), int(seed))
    df = pd.DataFrame(x, columns=names)
    df[_carma.default_label()] = y.astype(np.int64)
    return df, Graph(graph)


def _is_categorical(s):
    return isinstance(s.dtype, pd.CategoricalDtype)


def _column_values(df, name, source):
    """Column ``name`` of ``df`` as float64, refusing what is not numbers."""
    s = df[name]
    name = str(name)
    if isinstance(s, pd.DataFrame):
        raise DataError(f"{source}: column '{name}' appears twice in the header")
    if _is_categorical(s):
        raise ColumnTypeError(
            f"{source}: column '{name}' is categorical; carma needs numbers (0 or 1 for a binary "
            f"feature): convert it first, e.g. df['{name}'].cat.codes, or one 0/1 column per "
            "category"
        )
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_complex_dtype(s.dtype):
        raise ColumnTypeError(
            f"{source}: column '{name}' has dtype {s.dtype}; expected numbers (int, float or "
            "bool)"
        )
    try:
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise ColumnTypeError(f"{source}: column '{name}': {e}") from None


def _check_values(x, names, binary, index, source, first_row=0):
    """Refuse a non-finite value, or a value other than 0 and 1 in a binary column, naming the
    row (1-based data row, and the DataFrame's index label) and the column, as ``carma`` names
    a CSV's."""
    bad = ~np.isfinite(x)
    for j, is_bin in enumerate(binary):
        if is_bin:
            bad[:, j] |= ~((x[:, j] == 0.0) | (x[:, j] == 1.0)) & np.isfinite(x[:, j])
    if not bad.any():
        return
    r, j = np.argwhere(bad)[0]
    v = x[r, j]
    expected = "a finite number" if not np.isfinite(v) else "0 or 1"
    at = f"data row {first_row + r + 1}"
    if index is not None:
        at += f" (index {index[r]!r})"
    raise DataError(
        f"{source}: {at}, column '{names[j]}': expected {expected}, found '{_fmt(v)}'"
    )


def _fmt(v):
    if np.isnan(v):
        return "NaN"
    return repr(float(v))


def _matrix(data, names, binary, source, extra="ignore", rows=None):
    """The rows of ``data`` (a DataFrame, a numpy array in the model's column order, or a list
    of dicts) as a C-contiguous float64 ``n x D`` array in the order of ``names``, checked."""
    if isinstance(data, pd.DataFrame):
        frame = data if rows is None else data.iloc[rows]
        cols = [str(c) for c in frame.columns]
        if len(set(cols)) != len(cols):
            dup = next(c for c in cols if cols.count(c) > 1)
            raise DataError(f"{source}: column '{dup}' appears twice in the header")
        for name in names:
            if name not in cols:
                raise DataError(
                    f"{source}: missing column '{name}' (the header has: {', '.join(cols)})"
                )
        if extra != "ignore":
            for c in cols:
                if c not in names and c not in extra:
                    raise DataError(
                        f"{source}: column '{c}' is not a feature of the causal graph (remove "
                        "it, or allow extra columns: ignore_extra=True)"
                    )
        original = dict(zip(cols, frame.columns))
        x = np.empty((len(frame), len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            x[:, j] = _column_values(frame, original[name], source)
        _check_values(x, names, binary, frame.index, source, 0 if rows is None else rows.start)
        return x
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise ColumnTypeError(f"{source}: array of dtype {arr.dtype}; expected numbers")
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataError(
            f"{source}: expected a 2-D array with {len(names)} columns ({', '.join(names)}), "
            f"found shape {arr.shape}"
        )
    if rows is not None:
        arr = arr[rows]
    x = np.ascontiguousarray(arr, dtype=np.float64)
    _check_values(x, names, binary, None, source, 0 if rows is None else rows.start)
    return x


class _Printer:
    """Progress as printed lines, one per stage and a few per stage's epochs (for a terminal,
    a log or a notebook without tqdm)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.next = 0

    def __call__(self, event, stage, epoch, epochs, loss, summary):
        if event == "stage":
            self.next = 0
            print(f"carma: {stage}: training ({epochs} epochs)" if epochs else f"carma: {stage}",
                  file=self.stream, flush=True)
        elif event == "epoch" and epochs and epoch * 10 >= self.next * epochs:
            self.next = epoch * 10 // epochs + 1
            print(f"carma: {stage}: epoch {epoch}/{epochs}, loss {loss:.4f}", file=self.stream,
                  flush=True)
        elif event == "done":
            print(f"carma: {stage}: {summary}", file=self.stream, flush=True)


class _Tqdm:
    """Progress as one tqdm bar per stage."""

    def __init__(self, tqdm):
        self.tqdm = tqdm
        self.bar = None

    def __call__(self, event, stage, epoch, epochs, loss, summary):
        if event == "stage":
            self.close()
            if epochs:
                self.bar = self.tqdm(total=epochs, desc=f"carma: {stage}", unit="epoch")
        elif event == "epoch" and self.bar is not None:
            self.bar.update(epoch - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif event == "done":
            if self.bar is not None:
                self.bar.set_postfix_str(summary)
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _progress(progress):
    if progress is False or progress is None:
        return None
    if isinstance(progress, (_Printer, _Tqdm)):
        return progress
    if progress == "print":
        return _Printer()
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _Printer()
        return _Tqdm(tqdm)
    if callable(progress):
        # A tqdm class (or anything called like one) or a plain callback.
        if isinstance(progress, type) or getattr(progress, "__name__", "") == "tqdm":
            return _Tqdm(progress)
        return lambda event, stage, epoch, epochs, loss, summary: progress(
            {"event": event, "stage": stage, "epoch": epoch, "epochs": epochs, "loss": loss,
             "summary": summary}
        )
    raise TypeError("progress: expected True, False, 'print', a tqdm class or a callable")


def fit(df, graph, label="y", classifier=None, seed=0, epochs_scale=1.0, progress=True,
        ignore_extra=False, name="DataFrame", positive_class=1):
    """Train the classifier (unless you bring one), the causal flow and CARMA on ``df``.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per person: a column per feature of ``graph`` (any order) and the 0/1 label
        column ``label`` (with a brought ``classifier`` it only reports its accuracy and may be
        absent).
    graph : Graph, str or path, or dict
        The causal graph (a :class:`Graph`, a graph file's path, or a dict for
        :meth:`Graph.from_dict`).
    classifier : optional
        Your own classifier, used exactly and frozen: scikit-learn ``LogisticRegression``,
        ``MLPClassifier``, a ``Pipeline(StandardScaler, one of them)``, or a PyTorch
        ``nn.Sequential``; see :mod:`carma.classifiers`. ``None`` trains the paper's.
    seed : int
        Master seed: the same data and seed give the same model, byte for byte.
    epochs_scale : float
        Multiplies every stage's epoch budget (0.2 for a quick model).
    progress : bool, tqdm class or callable
        ``True`` shows tqdm bars (printed lines without tqdm), ``"print"`` printed lines on
        standard error; a tqdm class gives its bars; a callable gets a dict per event
        (``event``, ``stage``, ``epoch``, ``epochs``, ``loss``, ``summary``).
    ignore_extra : bool
        Ignore columns that are neither features nor the label (else refused).
    positive_class :
        The class of a scikit-learn classifier that means "accepted".

    Returns
    -------
    Model
    """
    if not isinstance(graph, Graph):
        graph = Graph.from_dict(graph) if isinstance(graph, (dict, list)) else Graph.from_toml(graph)
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"fit: expected a pandas DataFrame, found {type(df).__name__}")
    _carma.check_setup(graph._native, str(label))
    names, binary = graph.names, graph.binary
    has_label = label in [str(c) for c in df.columns]
    if not has_label and classifier is None:
        cols = ", ".join(str(c) for c in df.columns)
        raise DataError(
            f"{name}: missing column '{label}' (the header has: {cols}) (the label column is "
            f"'{label}'; name yours with label=NAME)"
        )
    x = _matrix(df, names, binary, name, extra="ignore" if ignore_extra else [label])
    y = None
    if has_label:
        yv = _column_values(df, dict(zip([str(c) for c in df.columns], df.columns))[label], name)
        _check_values(yv[:, None], [label], [True], df.index, name)
        y = yv
    document = None
    if classifier is not None:
        document = json.dumps(to_classifier_json(classifier, names, positive_class))
    return Model(
        _carma.fit(graph._native, x, y, str(label), document, int(seed), float(epochs_scale),
                   _progress(progress), str(name), str(name))
    )


class Model:
    """A trained model (tens of kilobytes of bundle bytes): recommend, save, load, inspect.

    Pickles as its bytes, so it ships to Dask or multiprocessing workers cheaply.
    """

    def __init__(self, native):
        self._native = native

    @classmethod
    def load(cls, path):
        """Read a model file (from :meth:`save` or ``carma fit``). A missing file raises
        :class:`FileNotFoundError`, a bad one :class:`ModelError`."""
        return cls(_carma.Model.load(os.fspath(path)))

    @classmethod
    def from_bytes(cls, data, source="<bytes>"):
        """A model from its bundle bytes."""
        return cls(_carma.Model.from_bytes(bytes(data), source))

    def to_bytes(self):
        """The bundle bytes (what :meth:`save` writes)."""
        return self._native.to_bytes()

    def save(self, path):
        """Write the model file atomically: complete or not at all, an older file untouched on
        failure."""
        self._native.save(os.fspath(path))

    def info(self):
        """What ``carma inspect --json`` shows: metadata, features, sizes and metrics."""
        return json.loads(self._native.info_json())

    @property
    def features(self):
        """Feature names, in the model's column order."""
        return list(self._native.names)

    def __reduce__(self):
        return (Model.from_bytes, (self.to_bytes(), self._native.source))

    def __repr__(self):
        return repr(self._native)

    def _limits(self, forbid, limits):
        limits = dict(limits or {})
        known = {"min", "max", "increase_only", "decrease_only", "max_changes", "min_prob",
                 "refine"}
        unknown = sorted(set(limits) - known)
        if unknown:
            raise LimitError(
                f"limits: unknown key '{unknown[0]}' (expected: {', '.join(sorted(known))})"
            )
        if isinstance(forbid, str):
            forbid = [forbid]
        forbid = [str(f) for f in (forbid or [])]
        actionable = dict(zip(self.features, self._native.actionable))
        for f in forbid:
            if f in actionable and not actionable[f]:
                warnings.warn(
                    f"forbid {f}: this feature is not actionable in the model anyway, so "
                    "forbidding it changes nothing",
                    stacklevel=3,
                )

        def pairs(key):
            value = limits.get(key) or {}
            if not isinstance(value, dict):
                raise LimitError(f"limits['{key}']: expected a dict of feature: value")
            out = []
            for k, v in value.items():
                try:
                    out.append((str(k), float(v)))
                except (TypeError, ValueError):
                    raise LimitError(
                        f"limits['{key}']['{k}']: '{v}' is not a finite number"
                    ) from None
            return out

        def names(key):
            value = limits.get(key) or []
            return [value] if isinstance(value, str) else [str(v) for v in value]

        max_changes = limits.get("max_changes")
        if max_changes is not None:
            if not (isinstance(max_changes, (int, np.integer)) and 0 <= max_changes <= 64):
                raise LimitError(
                    f"limits['max_changes']: expected a whole number from 0 to 64, found "
                    f"{max_changes!r}"
                )
            max_changes = int(max_changes)
        return dict(
            forbid=forbid,
            min=pairs("min"),
            max=pairs("max"),
            increase_only=names("increase_only"),
            decrease_only=names("decrease_only"),
            max_changes=max_changes,
            refine=bool(limits.get("refine", True)),
            min_prob=float(limits.get("min_prob", _carma.DEFAULT_MIN_PROB)),
        )

    def recommend_arrays(self, x, forbid=None, limits=None, threads=None, source="array",
                         row_offset=0):
        """:meth:`recommend` on a C-contiguous float64 array in the model's column order,
        returning the raw arrays (``status`` codes into :data:`STATUSES`, probabilities,
        costs, feature bit sets, ``x_cf``): the fast path for large batches."""
        return self._native.recommend_batch(
            np.ascontiguousarray(x, dtype=np.float64), threads=threads, source=source,
            row_offset=row_offset, **self._limits(forbid, limits)
        )

    def recommend(self, df, forbid=None, limits=None, threads=None):
        """What each person (row) should change to be accepted.

        Parameters
        ----------
        df : pandas.DataFrame or numpy array
            One row per person, a column per feature of the model (any order; other columns,
            such as an id, are ignored), or an ``n x D`` array in the model's column order.
        forbid : list of str
            Features not acted on directly (they may still change as a consequence of acting
            on their causes), as ``carma recommend --forbid``.
        limits : dict
            The per-request limits of ``carma recommend``: ``min`` and ``max`` (dicts of
            feature: value, original units), ``increase_only`` and ``decrease_only`` (lists),
            ``max_changes`` (int), ``min_prob`` (0.5 to 1, the probability a refined
            recommendation keeps; default 0.6, as the CLI's), ``refine`` (False: the networks' proposal as it is).
        threads : int
            Worker threads (default: every core).

        Returns
        -------
        pandas.DataFrame (for a DataFrame, with its index) with, per row: ``status`` (one of
        :data:`STATUSES`), ``accepted_before``, ``accepted_after``, ``prob_before``,
        ``prob_after``, ``cost``, ``cost_unrefined``, ``n_changes``, ``actions`` (the features
        to change, ``;``-separated), ``consequences`` (features that change as a result),
        ``bound_by_limit``, ``out_of_range``, then ``<feature>_recommended`` for every feature
        (the recommended profile; a changed feature goes from its input value to this one).
        """
        names = self.features
        binary = list(self._native.binary)
        source = "DataFrame" if isinstance(df, pd.DataFrame) else "array"
        n = len(df)
        parts = []
        for start in range(0, max(n, 1), CHUNK_ROWS):
            rows = slice(start, min(n, start + CHUNK_ROWS))
            x = _matrix(df, names, binary, source, rows=rows)
            parts.append(self.recommend_arrays(x, forbid, limits, threads, source, start))
        out = _frame(parts, names)
        if isinstance(df, pd.DataFrame):
            out.index = df.index
        return out

    def recommend_one(self, person, forbid=None, limits=None, alternatives=0):
        """One person's recommendation as a dict (a JSON-ready form of ``carma recommend
        --format json``): ``status``, ``accepted_before``, ``accepted_after``,
        ``prob_before``, ``prob_after``, ``cost``, ``actions`` and ``consequences`` (lists of
        ``{"feature", "from", "to"}``), ``recommended`` (feature: value), ``bound_by_limit``,
        ``out_of_range``; with ``alternatives=K`` (0 to 16, as ``carma recommend
        --alternatives K``), ``alternatives``: up to K further recommendations, each changing a
        different set of features (the cheapest found with one more feature of the earlier
        ones forbidden), by cost, each with ``actions``, ``prob_after``, ``cost`` and
        ``recommended``."""
        if isinstance(person, pd.Series):
            person = person.to_dict()
        if not isinstance(person, dict):
            raise DataError(f"recommend_one: expected a dict of feature: value, found "
                            f"{type(person).__name__}")
        frame = pd.DataFrame([person])
        names = self.features
        x = _matrix(frame, names, list(self._native.binary), "person")
        r = self.recommend_arrays(x, forbid, limits, 1, "person")
        x32 = x[0].astype(np.float32)
        to = r["x_cf"][0]

        def changes(mask):
            return [
                {"feature": f, "from": float(x32[i]), "to": float(to[i])}
                for i, f in enumerate(names) if (int(mask) >> i) & 1
            ]

        result = {
            "status": STATUSES[r["status"][0]],
            "accepted_before": bool(r["status"][0] == 0),
            "accepted_after": bool(r["status"][0] in (0, 1)),
            "prob_before": float(r["prob_before"][0]),
            "prob_after": float(r["prob_after"][0]),
            "cost": float(r["cost"][0]),
            "cost_unrefined": float(r["cost_unrefined"][0]),
            "actions": changes(r["mask"][0]),
            "consequences": changes(r["consequences"][0]),
            "recommended": {f: float(to[i]) for i, f in enumerate(names)},
            "bound_by_limit": _set_names(int(r["bound_by_limit"][0]), names),
            "max_changes_bound": bool(r["max_changes_bound"][0]),
            "out_of_range": _set_names(int(r["out_of_range"][0]), names),
        }
        if alternatives:
            found = self._native.recommend_alternatives(
                [float(v) for v in x[0]], int(alternatives), **self._limits(forbid, limits))
            result["alternatives"] = [
                {
                    "actions": [
                        {"feature": f, "from": float(x32[i]), "to": float(x_cf[i])}
                        for i, f in enumerate(names) if (mask >> i) & 1
                    ],
                    "prob_after": float(prob_after),
                    "cost": float(cost),
                    "recommended": {f: float(x_cf[i]) for i, f in enumerate(names)},
                }
                for _, prob_after, cost, mask, x_cf in found[1:]
            ]
        return result


def changes(people, recommendations, features=None):
    """The changes of :meth:`Model.recommend`'s output in long form, one row per changed feature
    per person: the person's index, ``feature``, ``role`` (``action``: changed directly;
    ``consequence``: changes as a result), ``from`` (the input value, as the model reads it, a
    32-bit float) and ``to`` (the recommended value). ``people`` is the DataFrame given to
    ``recommend`` and ``recommendations`` what it returned; only accepted recommendations are
    listed (a status other than ``accepted after the recommendation`` is not advice)."""
    rec = recommendations
    if features is None:
        features = [c[: -len("_recommended")] for c in rec.columns if c.endswith("_recommended")]
    advised = (rec["status"] == STATUSES[1]).to_numpy()
    parts = []
    for role, column in (("action", "actions"), ("consequence", "consequences")):
        col = rec[column]
        cats = [c.split(";") if c else [] for c in col.cat.categories]
        codes = col.cat.codes.to_numpy()
        for f in features:
            has = np.array([f in c for c in cats] + [False], dtype=bool)[codes]
            rows = np.flatnonzero(has & advised)
            if len(rows) == 0:
                continue
            parts.append(pd.DataFrame({
                "feature": f,
                "role": role,
                "from": people[f].to_numpy()[rows].astype(np.float32),
                "to": rec[f"{f}_recommended"].to_numpy()[rows],
                "_pos": rows,
                "_r": int(role == "consequence"),
                "_f": features.index(f),
            }, index=rec.index[rows]))
    if not parts:
        return pd.DataFrame({"feature": [], "role": [], "from": np.array([], np.float32),
                             "to": np.array([], np.float32)})
    # In the people's order, each person's actions first, then the consequences, by feature.
    out = pd.concat(parts)
    return out.sort_values(["_pos", "_r", "_f"], kind="stable").drop(columns=["_pos", "_f", "_r"])


def _set_names(bits, names):
    return [f for i, f in enumerate(names) if (bits >> i) & 1]


def _sets(bits, names):
    """A categorical column of ``;``-joined feature names from u64 bit sets (the distinct sets
    are few, so this is cheap for millions of rows)."""
    uniq, inverse = np.unique(bits, return_inverse=True)
    labels = [";".join(_set_names(int(b), names)) for b in uniq]
    return pd.Categorical.from_codes(inverse.reshape(-1), categories=labels)


def _frame(parts, names):
    def cat(key):
        return np.concatenate([p[key] for p in parts]) if len(parts) > 1 else parts[0][key]

    status = cat("status")
    mask = cat("mask")
    out = {
        "status": pd.Categorical.from_codes(status.astype(np.int8), categories=list(STATUSES)),
        "accepted_before": status == 0,
        "accepted_after": (status == 0) | (status == 1),
        "prob_before": cat("prob_before"),
        "prob_after": cat("prob_after"),
        "cost": cat("cost"),
        "cost_unrefined": cat("cost_unrefined"),
        "n_changes": np.bitwise_count(mask).astype(np.int8) if hasattr(np, "bitwise_count")
        else np.array([bin(int(m)).count("1") for m in mask], dtype=np.int8),
        "actions": _sets(mask, names),
        "consequences": _sets(cat("consequences"), names),
        "bound_by_limit": _sets(cat("bound_by_limit"), names),
        "out_of_range": _sets(cat("out_of_range"), names),
        "max_changes_bound": cat("max_changes_bound"),
    }
    x_cf = cat("x_cf")
    for j, f in enumerate(names):
        out[f"{f}_recommended"] = x_cf[:, j]
    return pd.DataFrame(out)
