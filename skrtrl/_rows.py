"""The one-row path: a fitted stream model called once per sample.

A model that learns from a sensor, a log or a feed is called once per row:
``predict`` on the new row, then ``partial_fit`` once its target arrives.
The compiled step costs microseconds at a few dozen units; the general path
around it (parameter and training-setting checks, scikit-learn's
``validate_data``, dtype and shape handling, the target encoder) costs far
more, and nearly all of it repeats what the previous call already checked.

This module remembers, per model, what a successful general call established
(:class:`RowCache`) and lets a later call on a single row skip exactly that:

* the hyper-parameters: the values (and their types) at the last general
  call; any change, by ``set_params`` or by assignment, sends the next call
  through the general path again;
* ``params_``: the views checked at the last general call, held here so that
  an entry the user replaced is seen by identity;
* the row itself: a plain float32 or float64 ndarray of shape
  ``(1, n_features_in_)``, fitted without feature names. Anything else, and
  any row with a non-finite value, takes the general path, which accepts it
  or refuses it with its usual message; so does any target the fast check
  cannot vouch for (a label unseen, a NaN, another shape or dtype).

A caller that converts and checks each row itself (the river adapter)
uses :class:`SampleStream`: the compiled step kept between calls, with the
same checks of the model on every call, and none of the row's.

Nothing is changed before every check has passed, so a refused call leaves
the model as it was. The cache lives beside the model, not in it: it is not
pickled or copied, and a new model (``fit`` without ``warm_start``, loading
a pickle) starts without one.
"""

import functools
import math
import operator
import weakref

import numpy as np
from sklearn.utils.multiclass import check_classification_targets

from ._kernels._interrupt import raise_pending_signal
from ._kernels._rtrl import GUARD_ABSENT
from ._model import Diverged
from ._optim import OnlineUpdate
from ._sequences import PackedSequences, TrainingBatch
from ._settings import check_training_settings

#: Model -> RowCache. Keyed weakly: a cache dies with its model.
_CACHES = weakref.WeakKeyDictionary()
#: Hyper-parameter names of each estimator class.
_PARAM_NAMES = {}
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _read_only(array):
    array.flags.writeable = False
    return array


#: One sequence of one row: its offsets, first row and length.
_OFFSETS = _read_only(np.array([0, 1], dtype=np.intp))
_START = _read_only(np.zeros(1, dtype=np.intp))
_LENGTH = _read_only(np.ones(1, dtype=np.intp))
_WEIGHT = {dtype: _read_only(np.ones(1, dtype=dtype)) for dtype in _FLOATS}


def _all_finite(array):
    """Whether every value of a small array is finite.

    (Faster than numpy's reductions on a handful of values, and free of
    the overflow a sum of large finite values could meet.)
    """
    return all(map(math.isfinite, array.ravel().tolist()))


def _settings(estimator):
    """The hyper-parameter values of ``estimator``, in a fixed order.

    Read from the instance dict, where scikit-learn estimators keep them
    (None if one is missing there: then the general path runs).
    """
    cls = type(estimator)
    names = _PARAM_NAMES.get(cls)
    if names is None:
        names = _PARAM_NAMES[cls] = operator.itemgetter(*cls._get_param_names())
    try:
        return names(estimator.__dict__)
    except KeyError:
        return None


def _same_settings(values, before, types_before):
    """Whether hyper-parameter ``values`` are those checked ``before``.

    Types count: ``n_hidden=16.0`` or ``stateful=1`` equal the values they
    replace but would not pass validation. (The same objects, the usual
    case, need no closer look.)
    """
    if values is None:
        return False
    if all(map(operator.is_, values, before)):
        return True
    return values == before and tuple(map(type, values)) == types_before


class RowCache:
    """What a successful general call of a stream model established.

    Parameters
    ----------
    estimator : BaseRTRL
        The fitted stream model (``stateful=True``).
    trained : bool
        Whether the training settings were checked (and passed) too: a
        prediction alone checks fewer.
    """

    def __init__(self, estimator, trained):
        model = estimator._model
        self.settings = _settings(estimator)
        self.types = tuple(map(type, self.settings or ()))
        self.trained = trained
        self.cell = model.cell
        self.params = estimator.params_
        self.views = tuple(self.params.values())
        self.shape = (1, estimator.n_features_in_)
        self.dtype = model.dtype
        self.n_outputs = estimator.n_outputs_
        self._penalty = None
        self._labels = None
        self._step = None
        self._bound = ()

    def serves(self, estimator, training):
        """Whether a one-row call of ``estimator`` may rely on this cache."""
        if training and not self.trained:
            return False
        params = estimator.params_
        return (
            estimator._model.cell is self.cell
            and _same_settings(_settings(estimator), self.settings, self.types)
            and "feature_names_in_" not in estimator.__dict__
            and params is self.params
            and len(params) == len(self.views)
            and all(map(operator.is_, params.values(), self.views))
        )

    def row(self, X):
        """X as the kernels take it, or None if X needs the general path."""
        if type(X) is not np.ndarray or X.shape != self.shape or X.dtype not in _FLOATS:
            return None
        if not _all_finite(X):
            return None
        if X.dtype != self.dtype or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=self.dtype)
        return X

    def stream_step(self, estimator):
        """The model's compiled one-row stream, or None for the general path.

        Made on the first training row (``Cell.row_stream``) and kept while
        the arrays it is bound to stay the same objects: the parameters, the
        optimizer (replaced when a diverged call restores it) and the
        stream state (replaced by ``reset_state``).
        """
        model = estimator._model
        # Cells of the protocol (``Cell``) may offer one; the wrappers of
        # the other gradient methods and of output feedback do not.
        make = getattr(model.cell, "row_stream", None)
        stream = model.stream
        if make is None or stream is None:
            return None
        bound = (model.params, model.optimizer, stream, stream["hidden"],
                 stream["influence"])  # fmt: skip
        if len(bound) == len(self._bound) and all(
            map(operator.is_, bound, self._bound)
        ):
            return self._step
        update = OnlineUpdate(
            model.optimizer, self.penalty(estimator.alpha), estimator.clip_norm
        )
        self._step = make(model.params, update, stream, estimator._loss_name)
        self._bound = bound
        return self._step

    def penalty(self, alpha):
        """``alpha`` times the L2 mask (alpha is one of the settings)."""
        if self._penalty is None:
            self._penalty = alpha * self.cell.penalty_mask(self.dtype)
        return self._penalty

    def regression_target(self, y):
        """The target row of a regressor, or None for the general path."""
        if type(y) is not np.ndarray or y.dtype.kind not in "fiu":
            return None
        if y.ndim not in (1, 2) or y.shape[0] != 1 or y.size != self.n_outputs:
            return None
        if not _all_finite(y):
            return None
        return np.ascontiguousarray(y.reshape(1, self.n_outputs), dtype=self.dtype)

    def classification_target(self, y, classes):
        """The encoded target row of a classifier, or None.

        The label is looked up among ``classes_``; labels that the general
        path would refuse on their own (such as a non-integral float, a
        "continuous" target to scikit-learn) are left out of the table, so
        that they meet its message.
        """
        if type(y) is not np.ndarray or y.shape != (1,) or y.dtype.kind not in "biufU":
            return None
        if self._labels is None:
            self._labels = self._label_table(classes)
        try:
            return self._labels.get(y[0])
        except TypeError:  # an unhashable label
            return None

    def _label_table(self, classes):
        n_classes = classes.shape[0]
        table = {}
        for code, label in enumerate(classes):
            try:
                check_classification_targets(np.asarray([label]))
            except (ValueError, TypeError):
                continue
            if n_classes == 2:
                row = np.full((1, 1), float(code == 1), dtype=self.dtype)
            else:
                row = np.zeros((1, n_classes), dtype=self.dtype)
                row[0, code] = 1.0
            table[label] = _read_only(row)
        return table


def remember(estimator, *, trained):
    """Record a successful general call of a stream model."""
    if not estimator.stateful:
        return
    model = estimator._model
    if not trained:
        # Keep what a training call established, while it still holds.
        cache = _CACHES.get(model)
        if cache is not None and cache.serves(estimator, training=True):
            return
        # Prediction synchronised the model with the settings; what a
        # training call checks beyond that are the training settings.
        try:
            check_training_settings(estimator)
            trained = True
        except ValueError:
            pass
    _CACHES[model] = RowCache(estimator, trained)


def cache_for(estimator, *, training):
    """The cache a one-row call may use, or None."""
    model = estimator.__dict__.get("_model")
    if model is None:
        return None
    cache = _CACHES.get(model)
    if cache is None or not cache.serves(estimator, training):
        return None
    return cache


def row_outputs(estimator, X):
    """Readout pre-activations of one stream row, or None for the general path.

    Returns ``(raw, packed)`` as ``BaseRTRL._raw_outputs`` does.
    """
    cache = cache_for(estimator, training=False)
    if cache is None:
        return None
    row = cache.row(X)
    if row is None:
        return None
    model = estimator._model
    step = cache.stream_step(estimator)
    if step is not None:
        H = np.empty((1, model.cell.n))
        step.hidden_after(row, H[0])
        return model.cell.readout(model.params, H), PackedSequences(
            row, _OFFSETS, "stream"
        )
    raw = model.sequence_outputs(
        row, _START, _LENGTH, estimator._loss_name, True,
        stream=model.stream is not None,
    )  # fmt: skip
    return raw, PackedSequences(row, _OFFSETS, "stream")


def learn_row(estimator, X, y):
    """``partial_fit`` on one stream row; False if it needs the general path."""
    cache = cache_for(estimator, training=True)
    if cache is None:
        return False
    row = cache.row(X)
    if row is None:
        return False
    if estimator._is_classifier_output():
        target = cache.classification_target(y, estimator.classes_)
    else:
        target = cache.regression_target(y)
    if target is None:
        return False
    model = estimator._model
    step = cache.stream_step(estimator)
    if step is not None:
        return _learn_step(estimator, model, step, row, target)
    batch = TrainingBatch(
        row, target, _START, _START, _LENGTH, _WEIGHT[cache.dtype], True
    )
    update = OnlineUpdate(
        model.optimizer, cache.penalty(estimator.alpha), estimator.clip_norm
    )
    try:
        loss = model.train_online(batch, update, estimator._loss_name, stream=True)
    except Diverged:
        estimator._warn_diverged()
        return True
    estimator._count_pass(float(sum(loss.tolist())), 1, None, incremental=True)
    return True


def _learn_step(estimator, model, step, row, target):
    """``learn_row`` through the compiled one-row stream: the same update,
    the same divergence rule (a diverged step is undone, then handled as
    the general path handles it)."""
    return _after_step(estimator, model, step, step.learn(row, target))


def _after_step(estimator, model, step, loss):
    """The divergence rule and the bookkeeping of a compiled step that
    returned ``loss``."""
    raise_pending_signal()
    try:
        if not math.isfinite(loss):  # learn undid the step already
            raise Diverged
        model.watch.check_stream_row(loss)
    except Diverged:
        if math.isfinite(loss):
            step.undo()
        estimator._warn_diverged()
        return True
    estimator._count_pass(loss, 1, None, incremental=True)
    return True


class SampleStream:
    """A stream model's compiled step, for a caller that checks rows itself.

    The river adapters call once per sample and hand over the sample's
    values, a list of floats in the model's feature order: ``row_outputs``
    and ``learn_row`` would check the row and the target again, look the
    cache up again and unpack the readout again. This keeps what stays the
    same between samples (the compiled step, the readout's blocks, a hidden
    state buffer, the encoded labels of a classifier) and checks, on every
    call, that nothing ``cache_for`` and ``RowCache.stream_step`` rely on
    has changed since the step was bound: the model, every hyper-parameter,
    ``params_`` and its entries, and the arrays the step is bound to. That
    check is one compiled pass of identity tests (``RowStream.watch``);
    anything replaced, by ``set_params``, assignment or a general call,
    sends the call through ``cache_for`` again (a new binding, or None /
    False: the caller's general path).

    Values that are not all finite Python floats are declined too (None /
    False): the caller converts and checks them as the general path does.
    Nothing is changed before every check has passed.

    Parameters
    ----------
    estimator : BaseRTRL
        The stream model (``stateful=True``); it may be unfitted yet. A
        regressor is served with one output.
    """

    def __init__(self, estimator):
        self.estimator = estimator
        self._model = None
        self._step = None
        self._readout = None
        self._targets = None

    def __reduce__(self):
        # A copy or a pickle binds anew: compiled steps hold raw pointers.
        return type(self), (self.estimator,)

    def _current_step(self):
        """The compiled step, rebound if anything changed; or None."""
        step = self._step
        if step is not None and step.unchanged():
            return step
        self._step = None
        return self._bind()

    def _bind(self):
        estimator = self.estimator
        self._targets = None
        model = estimator.__dict__.get("_model")
        if model is None:
            return None
        cache = cache_for(estimator, training=True)
        if cache is None:
            return None
        classifier = estimator._is_classifier_output()
        if not classifier and cache.n_outputs != 1:
            return None
        step = cache.stream_step(estimator)
        if step is None:
            return None
        if classifier:
            classes = estimator.classes_
            targets = [
                cache.classification_target(np.array([label]), classes)
                for label in classes
            ]
            if any(target is None for target in targets):
                return None
            self._targets = targets
        step.watch(self._guard(estimator, model))
        # The readout's blocks, taken once per binding (the step is rebound
        # whenever the parameter vector is replaced); they are views, so
        # they follow the updates.
        _, _, weight_out, bias_out = model.cell.layout.blocks(model.params)
        hidden = step.hidden_out
        self._readout = (weight_out[0], bias_out, hidden[np.newaxis], weight_out.T)
        self._model, self._step = model, step
        return step

    @staticmethod
    def _guard(estimator, model):
        """What must stay the same objects for the binding to hold: what
        ``RowCache.serves`` and ``RowCache.stream_step`` check."""
        settings = estimator.__dict__
        params = settings["params_"]
        stream = model.stream
        names = type(estimator)._get_param_names()
        guard = [(settings, name, settings[name]) for name in names]
        guard += [
            (settings, "feature_names_in_", GUARD_ABSENT),
            (settings, "_model", model),
            (settings, "params_", params),
            (params, None, len(params)),
        ]
        guard += [(params, name, view) for name, view in params.items()]
        guard += [
            (model.__dict__, name, getattr(model, name))
            for name in ("cell", "params", "optimizer", "stream")
        ]
        guard += [(stream, name, stream[name]) for name in ("hidden", "influence")]
        if "classes_" in settings:
            guard.append((settings, "classes_", settings["classes_"]))
        return guard

    def _hidden(self, x, names):
        """The compiled step with h after the sample ``x`` in its buffer,
        or None."""
        step = self._step
        if step is None or not step.predict_sample(x, names):
            # The guard failed (rebind), or the sample is declined.
            step = self._current_step()
            if step is None or not step.predict_sample(x, names):
                return None
        return step

    def predict_sample(self, x, names):
        """First readout pre-activation after the sample ``x``, or None.

        ``x``: a dict whose values at ``names`` (a tuple, the feature
        order) are the row. The stream state is left unchanged.
        """
        step = self._hidden(x, names)
        if step is None or self._targets is not None:
            return None
        weights, bias_out, _, _ = self._readout
        # ``cell.readout`` for one row and one output: numpy computes its
        # (1, n) @ (n, 1) product as this dot product of two vectors, so
        # the value is the same bit for bit, without the 2-D arrays (and
        # the sum of two doubles is the same in Python as in numpy).
        return float(weights.dot(step.hidden_out)) + bias_out.item(0)

    def raw_sample(self, x, names):
        """Readout pre-activations (1, n_outputs) after the sample ``x``,
        or None (``cell.readout``, the same operation on the same
        arrays)."""
        step = self._hidden(x, names)
        if step is None:
            return None
        _, bias_out, hidden, weights_t = self._readout
        return hidden @ weights_t + bias_out

    def learn_sample(self, x, names, target):
        """``partial_fit`` of a one-output regressor on the sample ``x``
        and the finite float ``target``; False if the caller's general path
        must run."""
        step = self._step
        loss = None
        if step is not None and self._targets is None:
            loss = step.learn_sample(x, names, target)
        if loss is None:
            step = self._current_step()
            if step is None or self._targets is not None:
                return False
            loss = step.learn_sample(x, names, target)
            if loss is None:
                return False
        return _after_step(self.estimator, self._model, step, loss)

    def learn_code(self, x, names, code):
        """``partial_fit`` of a classifier on the sample ``x`` and the
        label ``classes_[code]``; False if the general path must run."""
        step = self._step
        loss = None
        if step is not None and self._targets is not None:
            loss = step.learn_sample_target(x, names, self._targets[code])
        if loss is None:
            step = self._current_step()
            if step is None or self._targets is None:
                return False
            loss = step.learn_sample_target(x, names, self._targets[code])
            if loss is None:
                return False
        return _after_step(self.estimator, self._model, step, loss)

    def predict(self, row):
        """First readout pre-activation after ``row`` (a finite float64
        C-contiguous (1, m) array), or None."""
        step = self._current_step()
        if step is None or self._targets is not None:
            return None
        if not step.set_row(row[0].tolist()):
            return None
        step.predict_hidden()
        weights, bias_out, _, _ = self._readout
        return float(weights.dot(step.hidden_out)) + bias_out.item(0)

    def learn(self, row, target):
        """``learn_sample`` of a (1, m) row."""
        step = self._current_step()
        if step is None or self._targets is not None:
            return False
        if not step.set_row(row[0].tolist()):
            return False
        return _after_step(self.estimator, self._model, step, step.learn_value(target))


def one_row_first(partial_fit):
    """Decorate ``partial_fit``: one stream row goes the one-row path.

    Only calls with nothing beyond ``X`` and ``y`` (``sample_weight`` and
    ``classes`` left at None) qualify; the rest, and any call the one-row
    path declines, run the decorated method.
    """

    @functools.wraps(partial_fit)
    def wrapper(estimator, X, y, *args, **kwargs):
        if (
            not any(arg is not None for arg in args)
            and not any(arg is not None for arg in kwargs.values())
            and learn_row(estimator, X, y)
        ):
            return estimator
        return partial_fit(estimator, X, y, *args, **kwargs)

    return wrapper
