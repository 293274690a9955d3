"""river adapters: a stream model of skrtrl as a river estimator.

`river <https://riverml.xyz>`_ learns from one sample at a time: a sample is
a dict of features, ``learn_one(x, y)`` learns from it and ``predict_one(x)``
(``predict_proba_one(x)`` for a classifier) predicts. :class:`RiverRegressor`
and :class:`RiverClassifier` give a stateful :class:`~skrtrl.RTRLRegressor`
or :class:`~skrtrl.RTRLClassifier` (``stateful=True``) that interface, so it
runs in river's pipelines (after ``preprocessing.StandardScaler``, say) and
in ``evaluate.progressive_val_score``.

The samples are consecutive time steps of one stream: the network's hidden
state runs on from one sample to the next, which is what river's
progressive validation feeds it. Each call is one of the estimator's
one-row calls (see the user guide's section on streams). Both adapters keep
the estimator's compiled one-row step bound between calls and hand it the
sample's values in the fixed feature order, re-checking the estimator on
every call (``skrtrl._rows.SampleStream``); a sample of anything but Python
floats is converted and checked first, as is every sample of a model
without a compiled step.

Needs the optional dependency river (``pip install skrtrl[river]``).
"""

import math

import numpy as np
from sklearn.base import clone as sklearn_clone

from ._estimators import RTRLClassifier, RTRLRegressor
from ._rows import SampleStream, learn_row, row_outputs

try:
    from river import base
except ImportError as exc:  # pragma: no cover - the test extra installs river
    raise ImportError(
        "skrtrl.river needs the river package; install it with "
        "`pip install skrtrl[river]` or `pip install river`."
    ) from exc

__all__ = ["RiverClassifier", "RiverRegressor"]


def _feature_order(x):
    """The names of the first dict, sorted so that key order never matters."""
    try:
        return tuple(sorted(x))
    except TypeError:  # names of several types
        return tuple(sorted(x, key=repr))


class _Adapter:
    """Feature order and dict-to-row conversion, shared by both adapters."""

    _kind = None

    def _check_estimator(self):
        if not isinstance(self.estimator, self._kind):
            raise TypeError(
                f"{type(self).__name__} wraps an {self._kind.__name__}; got "
                f"{type(self.estimator).__name__}."
            )
        if not self.estimator.stateful:
            raise ValueError(
                f"{type(self).__name__} needs a stream model: river feeds one "
                "sample after another, and the hidden state carries from each "
                "to the next. Pass the estimator with stateful=True."
            )

    @property
    def _fitted(self):
        return self.estimator.__sklearn_is_fitted__()

    def _sample_stream(self):
        try:
            stream = self._stream
        except AttributeError:  # an adapter pickled before it had one
            stream = None
        if stream is None or stream.estimator is not self.estimator:
            # (or the estimator was assigned anew)
            stream = self._stream = SampleStream(self.estimator)
        return stream

    def _row(self, x):
        """The (1, n_features) float64 row of ``x``, and the feature names.

        Raises ValueError naming a missing feature or a value that is not a
        finite number; features beyond the known ones are ignored.
        """
        names = self._names
        last = self.__dict__.get("_last")
        # progressive validation hands the same sample to predict_one, then
        # to learn_one: the same values make the same row, converted and
        # checked once.
        if last is not None and names is not None:
            try:
                if [x[name] for name in names] == last[0]:
                    return last[1], names
            except (KeyError, TypeError):
                pass  # refused below, with its message
        if names is None:
            names = (
                tuple(self.features) if self.features is not None else _feature_order(x)
            )
        try:
            values = [x[name] for name in names]
        except KeyError as exc:
            raise ValueError(
                f"x has no feature {exc.args[0]!r}; the model reads the "
                f"features {list(names)}."
            ) from None
        except TypeError as exc:
            raise TypeError(
                f"x must be a dict of features; got {type(x).__name__}."
            ) from exc
        try:
            row = np.array([values], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"every feature must be a real number; x holds {values!r} for "
                f"{list(names)} ({exc})."
            ) from None
        floats = row[0].tolist()
        if not all(map(math.isfinite, floats)):
            bad = {n: x[n] for n, v in zip(names, floats) if not math.isfinite(v)}
            raise ValueError(
                f"the features {list(bad)} of x are not finite numbers (got "
                f"{list(bad.values())}); the model needs finite real numbers."
            )
        self._last = (values, row)
        return row, names

    def _commit_names(self, names):
        if self._names is None:
            self._names = names

    def _unit_test_skips(self):
        # A missing feature is refused (the network reads a fixed vector),
        # which these checks of river's, learning from samples short of a
        # few features, do not expect.
        return {
            "check_emerging_features",
            "check_disappearing_features",
            "check_radically_disappearing_features",
        }

    def clone(self, new_params=None, include_attributes=False):
        """A fresh adapter: same parameters, an unfitted copy of the estimator.

        Parameters
        ----------
        new_params : dict, default=None
            Parameters to change.
        include_attributes : bool, default=False
            Copy the learnt state too (estimator and feature order).

        Returns
        -------
        clone : adapter
            The new adapter.
        """
        if include_attributes:
            return super().clone(new_params, include_attributes=True)
        params = {**self._get_params(), **(new_params or {})}
        if "estimator" not in (new_params or {}):
            params["estimator"] = sklearn_clone(self.estimator)
        return type(self)(**params)


class RiverRegressor(_Adapter, base.Regressor):
    """A stateful :class:`~skrtrl.RTRLRegressor` as a river regressor.

    The samples given to ``learn_one`` and ``predict_one`` are consecutive
    time steps of one stream. ``predict_one(x)`` runs the network one step on
    from its state without changing anything; ``learn_one(x, y)`` moves the
    state over ``x`` and updates the weights (exactly ``partial_fit`` on one
    row), so the prequential loop ``predict_one(x)``, ``learn_one(x, y)`` of
    ``river.evaluate.progressive_val_score`` predicts every sample before
    learning from it.

    Parameters
    ----------
    estimator : RTRLRegressor
        The model, with ``stateful=True``; trained in place. It may have
        been fitted already (on a stream of the same features, one output).
    features : list or None, default=None
        The feature names in the order the network reads them. By default,
        those of the first sample, sorted. Features beyond them are ignored;
        a missing one is an error.

    See Also
    --------
    RiverClassifier : The same for a classifier.

    Examples
    --------
    >>> from river import evaluate, metrics, preprocessing
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.river import RiverRegressor
    >>> from skrtrl.datasets import make_mackey_glass
    >>> series = make_mackey_glass(300, random_state=0)
    >>> stream = [({"x": a}, b) for a, b in zip(series[:-1], series[1:])]
    >>> model = preprocessing.StandardScaler() | RiverRegressor(
    ...     RTRLRegressor(n_hidden=8, stateful=True, learning_rate_init=0.01,
    ...                   random_state=0))
    >>> evaluate.progressive_val_score(stream, model, metrics.MAE())
    MAE: ...
    >>> model["RiverRegressor"].estimator.t_
    299
    """

    _kind = RTRLRegressor

    def __init__(self, estimator, features=None):
        self.estimator = estimator
        self.features = features
        self._names = None
        # The compiled step of the estimator, bound once and rebound when
        # the estimator changes: the per-sample path around the kernel.
        self._stream = SampleStream(estimator)
        self._check_estimator()
        if self._fitted and estimator.n_outputs_ != 1:
            raise ValueError(
                "RiverRegressor needs a model with one output; the estimator "
                f"was fitted with {estimator.n_outputs_}."
            )

    def learn_one(self, x, y):
        """Learn from one sample: one ``partial_fit`` step of the stream.

        Parameters
        ----------
        x : dict
            The features.
        y : float
            The target.
        """
        # The per-sample path: a sample of finite floats in the known
        # feature order, a finite float target and a model whose compiled
        # step is bound and unchanged.
        names = self._names
        if (
            names is not None
            and type(y) is float
            and math.isfinite(y)
            and self._sample_stream().learn_sample(x, names, y)
        ):
            return
        row, names = self._row(x)
        try:
            target = float(y)
        except (TypeError, ValueError):
            raise ValueError(f"y must be a real number; got {y!r}.") from None
        if not math.isfinite(target):
            raise ValueError(f"y must be finite; got {target!r}.")
        # The compiled step; else the estimator's one-row path (other
        # gradient methods, float32, output feedback); else partial_fit.
        if not self._sample_stream().learn(row, target):
            target = np.array([target])
            if not learn_row(self.estimator, row, target):
                self.estimator.partial_fit(row, target)
        self._commit_names(names)

    def predict_one(self, x):
        """Predict the target of one sample, continuing the stream.

        Parameters
        ----------
        x : dict
            The features.

        Returns
        -------
        y_pred : float
            The prediction; 0.0 before the model has learnt anything.
        """
        names = self._names
        if names is not None:
            fast = self._sample_stream().predict_sample(x, names)
            if fast is not None:
                return fast
        row, names = self._row(x)
        self._commit_names(names)
        if not self._fitted:
            return 0.0
        # The readout of a regressor is its prediction. As in learn_one:
        # the compiled step, else the one-row path, else predict.
        fast = self._sample_stream().predict(row)
        if fast is not None:
            return fast
        outputs = row_outputs(self.estimator, row)
        if outputs is not None:
            return float(outputs[0][0, 0])
        return float(self.estimator.predict(row)[0])

    @classmethod
    def _unit_test_params(cls):
        yield {"estimator": RTRLRegressor(n_hidden=4, stateful=True, random_state=0)}


class RiverClassifier(_Adapter, base.Classifier):
    """A stateful :class:`~skrtrl.RTRLClassifier` as a river classifier.

    As :class:`RiverRegressor`, for labels. The network has one output per
    class, so the classes are given up front; the adapter trains the
    estimator on their positions in ``classes`` (0, 1, ...), so any hashable
    labels work, ``None`` and mixed types included.

    Parameters
    ----------
    estimator : RTRLClassifier
        The model, with ``stateful=True``; trained in place. If fitted
        already, then by this adapter (on the classes' positions).
    classes : list
        Every label that can occur, at least two.
    features : list or None, default=None
        The feature names in the order the network reads them. By default,
        those of the first sample, sorted. Features beyond them are ignored;
        a missing one is an error.

    See Also
    --------
    RiverRegressor : The same for a regressor.

    Examples
    --------
    >>> import numpy as np
    >>> from river import evaluate, metrics
    >>> from skrtrl import RTRLClassifier
    >>> from skrtrl.river import RiverClassifier
    >>> bits = np.random.RandomState(0).randint(0, 2, size=1001)
    >>> # the label is the previous bit: it needs memory of one step
    >>> stream = [({"bit": float(b)}, bool(a)) for a, b in zip(bits, bits[1:])]
    >>> model = RiverClassifier(
    ...     RTRLClassifier(n_hidden=6, stateful=True, learning_rate_init=0.02,
    ...                    random_state=0),
    ...     classes=[False, True])
    >>> score = evaluate.progressive_val_score(stream, model, metrics.Accuracy())
    >>> score.get() > 0.9
    True
    >>> sorted(model.predict_proba_one({"bit": 1.0}))
    [False, True]
    """

    _kind = RTRLClassifier

    def __init__(self, estimator, classes, features=None):
        self.estimator = estimator
        self.classes = classes
        self.features = features
        self._names = None
        self._stream = SampleStream(estimator)
        self._check_estimator()
        labels = list(classes)
        codes = {}
        for code, label in enumerate(labels):
            try:
                codes.setdefault(label, np.array([code]))
            except TypeError:
                raise TypeError(
                    f"the classes must be hashable labels; got {label!r}."
                ) from None
        if len(codes) != len(labels) or len(labels) < 2:
            raise ValueError(
                f"classes must hold at least two labels, each once; got {classes!r}."
            )
        self._labels = labels
        self._codes = codes
        if self._fitted and not np.array_equal(
            estimator.classes_, np.arange(len(labels))
        ):
            raise ValueError(
                "The estimator was fitted on the labels "
                f"{estimator.classes_!r}, but the adapter trains it on the "
                f"positions 0 to {len(labels) - 1} of classes. Pass an unfitted "
                "estimator, or one fitted by this adapter."
            )

    @property
    def _multiclass(self):
        return len(self._labels) > 2

    def learn_one(self, x, y):
        """Learn from one sample: one ``partial_fit`` step of the stream.

        Parameters
        ----------
        x : dict
            The features.
        y : label
            The label, one of ``classes``.
        """
        try:
            code = self._codes.get(y)
        except TypeError:  # an unhashable label
            code = None
        names = self._names
        if (
            code is not None
            and names is not None
            and self._sample_stream().learn_code(x, names, int(code[0]))
        ):
            return
        row, names = self._row(x)
        if code is None:
            raise ValueError(f"y={y!r} is not one of the classes {self._labels!r}.")
        if self._fitted:
            if not learn_row(self.estimator, row, code):
                self.estimator.partial_fit(row, code)
        else:
            self.estimator.partial_fit(row, code, classes=np.arange(len(self._codes)))
        self._commit_names(names)

    def predict_proba_one(self, x):
        """Probability of each class for one sample, continuing the stream.

        Parameters
        ----------
        x : dict
            The features.

        Returns
        -------
        proba : dict
            Label to probability; uniform before the model has learnt.
        """
        names = self._names
        raw = None
        if names is not None:
            raw = self._sample_stream().raw_sample(x, names)
        if raw is None:
            row, names = self._row(x)
            self._commit_names(names)
            if not self._fitted:
                return dict.fromkeys(self._labels, 1.0 / len(self._labels))
            # As in learn_one: the compiled step (above), else the
            # estimator's one-row path, else predict_proba.
            outputs = row_outputs(self.estimator, row)
            if outputs is None:
                proba = self.estimator.predict_proba(row)[0]
                return dict(zip(self._labels, proba.tolist()))
            raw = outputs[0]
        proba = self.estimator._proba_packed(raw)[0]
        return dict(zip(self._labels, proba.tolist()))

    @classmethod
    def _unit_test_params(cls):
        yield {
            "estimator": RTRLClassifier(n_hidden=4, stateful=True, random_state=0),
            "classes": [False, True],
        }
