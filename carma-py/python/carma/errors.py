"""The exceptions carma raises.

Every one is a :class:`CarmaError`; each also derives from the built-in exception a Python user
would catch for it, so ``except ValueError`` works as it does for scikit-learn or pandas. A file
that does not exist raises the built-in :class:`FileNotFoundError`. The messages are those of the
``carma`` command.
"""


class CarmaError(Exception):
    """Base class of every carma error."""


class GraphError(CarmaError, ValueError):
    """The causal graph is invalid (a cycle, an unknown parent, a duplicate name, ...)."""


class DataError(CarmaError, ValueError):
    """The data is unusable: a missing column, a NaN, a non-binary value in a binary feature,
    too few rows, a constant column."""


class ColumnTypeError(DataError, TypeError):
    """A column has a type carma cannot read as numbers (object, string, categorical,
    datetime)."""


class ModelError(CarmaError, ValueError):
    """A model file or bundle is not a usable carma model."""


class ClassifierError(CarmaError, ValueError):
    """A brought classifier (or its JSON) is malformed or does not fit the graph."""


class UnsupportedClassifierError(ClassifierError, TypeError):
    """A brought classifier is of a kind carma cannot import exactly; the message says which
    kinds are supported."""


class LimitError(CarmaError, ValueError):
    """A per-request limit (forbid, min, max, directions, max_changes, min_prob) is invalid."""


class TrainingError(CarmaError, RuntimeError):
    """Training failed (diverged, or the model did not validate)."""


__all__ = [
    "CarmaError",
    "GraphError",
    "DataError",
    "ColumnTypeError",
    "ModelError",
    "ClassifierError",
    "UnsupportedClassifierError",
    "LimitError",
    "TrainingError",
]
