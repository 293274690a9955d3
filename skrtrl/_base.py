"""BaseRTRL: what the regressor and the classifier share.

``fit`` and ``partial_fit`` run one code path, ``_fit``: validate everything
first (so a failed call changes nothing), initialise on the first call, then
run epochs of minibatches. Each minibatch is one kernel call that returns the
loss and the exact gradient; the optimizer then updates the flat parameter
vector in place.
"""

import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _rows as rows
from ._cells import ACTIVATIONS, CELLS, GRADIENTS, POOLINGS
from ._divergence import LossWatch
from ._model import Diverged, Model
from ._parallel import kernel_threads
from ._resources import check_training_resources
from ._sequences import (
    TrainingSet,
    _gather_rows,
    _rows_as_sequences,
    check_sequence_targets,
    check_sequence_weights,
    check_sequences,
    check_stream,
    unpack_steps,
)
from ._settings import (
    build_cell,
    build_optimizer,
    cell_follows,
    check_training_settings,
    every_step,
    learning_rate,
    resolved_pooling,
    update_mode,
)
from ._stack import STACK_GRADIENTS

#: Version of the pickled state; loading another version raises an error
#: (format 1, from before the model object, is converted on load).
FORMAT_VERSION = 2
#: With verbose, stream mode prints a progress line every this many steps.
STREAM_REPORT_STEPS = 1000


class BaseRTRL(BaseEstimator, metaclass=ABCMeta):
    """Base class of the RTRL estimators. Not meant to be used directly."""

    _parameter_constraints: dict = {
        # A tuple (or list) of layer sizes is checked by _stack.layer_sizes.
        "n_hidden": [Interval(Integral, 1, None, closed="left"), tuple, list],
        # A tuple (or list) of names, one per layer, is checked by
        # _stack.layer_cells.
        "cell": [StrOptions(set(CELLS)), tuple, list],
        "gradient": [StrOptions(set(GRADIENTS) | set(STACK_GRADIENTS))],
        "truncation": [Interval(Integral, 1, None, closed="left"), None],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "output": [StrOptions({"last", "sequence"})],
        "pooling": [StrOptions(set(POOLINGS) | {"auto"})],
        "solver": [StrOptions({"adam", "sgd"})],
        "learning_rate_init": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "update": [StrOptions({"auto", "batch", "step"})],
        "stateful": ["boolean"],
        "output_feedback": ["boolean"],
        "teacher_forcing": ["boolean"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    #: The minibatch size of ``batch_size="auto"`` (at most this many).
    _auto_batch_size = 16

    def __init__(
        self,
        n_hidden=12,
        *,
        cell="gru",
        gradient="rtrl",
        truncation=None,
        activation="tanh",
        output="last",
        pooling="last",
        solver="adam",
        learning_rate_init="auto",
        alpha=1e-4,
        batch_size="auto",
        max_iter=100,
        tol=0.0,
        n_iter_no_change=30,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        clip_norm=1.0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        random_state=None,
        n_jobs=None,
        update="auto",
        stateful=False,
        output_feedback=False,
        teacher_forcing=True,
        warm_start=False,
        verbose=0,
    ):
        self.n_hidden = n_hidden
        self.cell = cell
        self.gradient = gradient
        self.truncation = truncation
        self.activation = activation
        self.output = output
        self.pooling = pooling
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.clip_norm = clip_norm
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.update = update
        self.stateful = stateful
        self.output_feedback = output_feedback
        self.teacher_forcing = teacher_forcing
        self.warm_start = warm_start
        self.verbose = verbose

    # -- hooks for the subclasses -----------------------------------------
    @abstractmethod
    def _encode_targets(self, y, *, first_call, classes=None):
        """Turn validated raw targets into the float matrix the kernel fits.

        Sets the output-related fitted attributes on the first call and
        returns ``(Y, loss_name)``.
        """

    @abstractmethod
    def _validation_score(self, packed, y):
        """Score used for early stopping on held-out sequences."""

    @property
    def _every_step(self):
        return every_step(self)

    # -- the model -----------------------------------------------------------
    def _make_cell(self, n_inputs, n_outputs):
        return build_cell(self, n_inputs, n_outputs, self.__dict__.get("_random_state"))

    def _bind_params(self):
        """(Re)create ``params_`` as views into the flat parameter vector."""
        self.params_ = self._model.views()

    def _sync_params(self):
        """Bring the model in line with ``params_`` and ``set_params``.

        Takes in entries of ``params_`` that were replaced rather than
        edited; follows changes of ``gradient``, ``truncation``,
        ``activation`` or ``teacher_forcing`` made after fitting; refuses
        changes of the parameter layout.
        """
        cell = self._model.cell
        if not cell_follows(cell, self):
            self._model.replace_cell(self._make_cell(cell.m, cell.o))
        views = self._model.take_views(self.params_)
        if views is not None:
            self.params_ = views

    def __getstate__(self):
        state = super().__getstate__()
        # The views would be pickled as copies; rebuild them on load.
        state = dict(state)
        state.pop("params_", None)
        state["_skrtrl_format"] = FORMAT_VERSION
        return state

    def __setstate__(self, state):
        saved = state.get("_skrtrl_format", FORMAT_VERSION)
        if saved not in (1, FORMAT_VERSION):
            raise ValueError(
                f"This {type(self).__name__} was saved in skrtrl's model "
                f"format {saved}, but this version of skrtrl reads format "
                f"{FORMAT_VERSION}. Load it with the skrtrl version that "
                "saved it, or train the model again."
            )
        state = {k: v for k, v in state.items() if k != "_skrtrl_format"}
        # Models saved before output feedback existed had none.
        state.setdefault("output_feedback", False)
        state.setdefault("teacher_forcing", True)
        state.setdefault("pooling", "last")
        super().__setstate__(state)
        if saved == 1 and "_flat_params" in self.__dict__:
            old_cell = self.__dict__["_cell"]
            cell = self._make_cell(old_cell.m, old_cell.o)
            self._model = Model.from_format_1(self.__dict__, cell)
        if "_model" in self.__dict__:
            self._bind_params()
            self._keep_fitted_pooling()

    def _keep_fitted_pooling(self):
        # A model saved when pooling="auto" meant another readout (the
        # gated LRU's mean, before it read the last y beside it) keeps
        # reading what it was fitted to read. Only that change: a setting
        # changed after fitting (stateful, output) is refused on load as
        # before saving, not turned into another pooling.
        fitted = getattr(self._model.cell, "pooling", "last")
        if (
            self.pooling == "auto"
            and fitted == "mean"
            and resolved_pooling(self) == "mean+last"
        ):
            self.pooling = fitted

    # The model's parts, under the names tests and tools have long used.
    _flat_params = property(lambda self: self._model.params)
    _cell = property(lambda self: self._model.cell)
    _optimizer = property(lambda self: self._model.optimizer)

    @property
    def _stream_state(self):
        if self._model.stream is None:
            raise AttributeError("no stream has started")
        return self._model.stream

    def _initialize(self, packed, n_outputs, dtype, random_state):
        cell = self._make_cell(packed.n_features, n_outputs)
        params = np.empty(cell.n_params, dtype=dtype)
        cell.initialize(params, random_state)
        optimizer = build_optimizer(self, cell.n_params, dtype)
        self._model = Model(cell, params, optimizer)
        self._bind_params()
        self.n_outputs_ = n_outputs
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # -- training ----------------------------------------------------------
    def _resolve_batch_size(self, n_sequences):
        if self.batch_size == "auto":
            return max(1, min(self._auto_batch_size, n_sequences))
        if self.batch_size > n_sequences:
            warnings.warn(
                "Got `batch_size` larger than the number of sequences; it "
                "will be clipped.",
                UserWarning,
                stacklevel=3,
            )
        return max(1, min(self.batch_size, n_sequences))

    def _training_set(self, X, y, sample_weight, *, first_call, classes=None):
        """Validate X, y and sample_weight into a :class:`TrainingSet`.

        Also returns the validated raw targets and the loss name.
        """
        if self.stateful:
            packed = check_stream(self, X, reset=first_call)
        else:
            packed = check_sequences(self, X, reset=first_call)
        dtype = packed.values.dtype
        if not first_call:
            dtype = self._model.dtype
            packed = _with_dtype(packed, dtype)
        y_checked = check_sequence_targets(y, packed, every_step=self._every_step)
        Y, loss_name = self._encode_targets(
            y_checked, first_call=first_call, classes=classes
        )
        Y = np.ascontiguousarray(Y, dtype=dtype)
        weights, row_weights = self._check_weights(sample_weight, packed, dtype)
        data = TrainingSet(packed, Y, weights, row_weights, self._every_step)
        return data, y_checked, loss_name

    def _fit(self, X, y, sample_weight=None, *, incremental, classes=None, record=None):
        """Validate, initialise on the first call, and train.

        ``record`` (stream, incremental): a list that receives the readout
        pre-activation of every row, computed before learning from that row
        (see ``predict_partial_fit``).
        """
        first_call = not (incremental or self.warm_start) or not hasattr(self, "_model")
        # A failed call must leave the estimator as it was. Validation sets
        # n_features_in_, classes_ and the like, and the validation split
        # comes after initialisation (to keep the random stream of a seed),
        # so snapshot the attributes and restore them if preparing fails.
        snapshot = dict(self.__dict__)
        try:
            check_training_settings(self)
            if not first_call:
                self._sync_params()
            data, y_checked, loss_name = self._training_set(
                X, y, sample_weight, first_call=first_call, classes=classes
            )
            if first_call or not (incremental and self.stateful):
                self._check_resources(data, first_call, incremental)
            if first_call:
                self._random_state = check_random_state(self.random_state)
                self._initialize(
                    data.packed,
                    data.targets.shape[1],
                    data.packed.values.dtype,
                    self._random_state,
                )
            if self.stateful and (first_call or not incremental):
                self._model.reset_stream()
            self._loss_name = loss_name

            n_seq = data.packed.n_sequences
            train_idx = np.arange(n_seq)
            val = None
            if self.early_stopping and not incremental:
                train_idx, val = self._split_validation(data.packed, y_checked, n_seq)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

        outputs = None
        if record is not None:
            outputs = np.empty(data.targets.shape, dtype=self._model.dtype)
            record.append((outputs, data.packed))
            # A block that diverges is undone; its predictions are then
            # those of the restored model from the state the block began in.
            stream_start = self._model.stream_snapshot()
        run_epoch = self._epoch_runner(data, train_idx.shape[0], outputs)
        model = self._model
        if not incremental:
            # The divergence rule's references start over with every fit.
            model.watch = LossWatch()
        max_iter = 1 if incremental else self.max_iter
        start = time.perf_counter()
        # On divergence, back to the start of the epoch of the lowest loss:
        # within a fit the best epoch's, for partial_fit before the call.
        best, best_loss = None, np.inf
        for _ in range(max_iter):
            order = train_idx
            if self.shuffle and not self.stateful:
                order = self._random_state.permutation(train_idx)
            if self.stateful and not incremental:
                # Each pass of fit goes over the stream from its beginning.
                model.reset_stream()
            epoch_start = model.snapshot()
            best = epoch_start if best is None else best
            updates = model.optimizer.t
            try:
                loss = run_epoch(order)
            except Diverged:
                model.watch.abandon_epoch()
                model.restore(best)
                if outputs is not None:
                    outputs[...] = model.outputs(
                        data.packed, self._loss_name, self._every_step,
                        stream=True, state=stream_start,
                    )  # fmt: skip
                self._warn_diverged()
                break
            except KeyboardInterrupt:
                # Kernels stop after a complete step: the model keeps its
                # last update; a stream has moved over the rows trained on.
                model.watch.abandon_epoch()
                if not np.isfinite(model.params).all():
                    model.restore(epoch_start)
                    if self.stateful:
                        model.reset_stream()
                elif self.stateful:
                    self.t_ += model.optimizer.t - updates
                raise
            if loss < best_loss:
                best, best_loss = epoch_start, loss
            model.watch.end_epoch(loss)
            n_steps = int(data.packed.lengths[train_idx].sum())
            self._count_pass(loss, n_steps, val, incremental, start)
            if incremental:
                break
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    print(
                        f"Training loss did not improve more than tol={self.tol:f}"
                        f" for {self.n_iter_no_change} consecutive epochs. "
                        "Stopping."
                    )
                break
        else:
            if not incremental:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                    "reached and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        if self.early_stopping and not incremental and self._best_params is not None:
            self._model.params[:] = self._best_params
        self._best_params = None
        rows.remember(self, trained=True)
        return self

    def _check_resources(self, data, first_call, incremental):
        """Refuse training that cannot fit in memory, before allocating it.

        Later ``partial_fit`` calls of a stream allocate nothing that grows
        with the model (its state exists), so they are not checked.
        """
        packed = data.packed
        if first_call:
            cell = self._make_cell(packed.n_features, data.targets.shape[1])
        else:
            cell = self._model.cell
        n_seq = packed.n_sequences
        batch_size = (
            self._auto_batch_size if self.batch_size == "auto" else self.batch_size
        )
        batch_size = max(1, min(batch_size, n_seq))
        epochs = 1 if incremental else min(self.max_iter, self.n_iter_no_change + 1)
        check_training_resources(
            self,
            cell,
            packed.values.dtype if first_call else self._model.dtype,
            online=update_mode(self) == "step",
            batch_size=batch_size,
            n_threads=kernel_threads(batch_size, self.n_jobs),
            longest=int(packed.lengths.max()) if n_seq else 0,
            steps=int(packed.lengths.sum()),
            epochs=epochs,
        )

    def _count_pass(self, loss, n_steps, val, incremental, start=None):
        """Record a pass over ``n_steps`` steps that ended with ``loss``."""
        self.loss_ = loss
        self.n_iter_ += 1
        self.t_ += n_steps
        self.loss_curve_.append(loss)
        self._update_no_improvement_count(val)
        if self.verbose and self.stateful and incremental:
            self._print_stream_progress(n_steps)
        elif self.verbose:
            self._print_progress(start)

    def _warn_diverged(self):
        if self.stateful:
            # The hidden state and influence matrices hold NaN or inf too.
            self._model.reset_stream()
        warnings.warn(
            "Training diverged: the training loss grew by orders of magnitude "
            "or a value became NaN or infinite, so training stopped and the "
            "parameters and optimizer state of the best epoch (for "
            "partial_fit: of before the call) were restored. Lower "
            f"learning_rate_init (now {learning_rate(self)}) or set "
            f"clip_norm (now {self.clip_norm}) to a smaller value.",
            ConvergenceWarning,
            stacklevel=4,
        )

    def _check_weights(self, sample_weight, packed, dtype):
        """Per-sequence weights and the weight of each target row.

        For sequence data sets, ``sample_weight`` has one weight per
        sequence, spread over its steps with per-step targets; for a stream,
        one weight per row (time step).
        """
        if self.stateful:
            row_weights = check_sequence_weights(
                sample_weight, _rows_as_sequences(packed), dtype
            )
            return np.array([row_weights.sum()], dtype=dtype), row_weights
        weights = check_sequence_weights(sample_weight, packed, dtype)
        if self._every_step:
            lengths = packed.lengths
            return weights, np.repeat(weights / lengths, lengths).astype(dtype)
        return weights, weights

    def _epoch_runner(self, data, n_train, outputs=None):
        """A function running one epoch over the sequences it is given.

        ``outputs``: see ``Model.online_epoch`` (stream mode only).
        """
        model = self._model
        settings = dict(
            loss=self._loss_name, alpha=self.alpha, clip_norm=self.clip_norm
        )
        if update_mode(self) == "step":
            return lambda order: model.online_epoch(
                data, order, settings, stream=self.stateful, outputs=outputs
            )
        batch_size = self._resolve_batch_size(n_train)
        workspace = model.workspace(batch_size, kernel_threads(batch_size, self.n_jobs))
        return lambda order: model.minibatch_epoch(
            data, order, batch_size, settings, workspace
        )

    def _predict_then_learn(self, X, y, sample_weight=None, classes=None):
        """Each row's readout pre-activation before learning from it, then learn.

        Returns ``(raw, packed)`` as ``_raw_outputs`` does; the model ends as
        after ``partial_fit(X, y)``.
        """
        if not self.stateful:
            raise ValueError(
                "predict_partial_fit runs a prequential (test-then-train) pass "
                "over the rows of a stream and needs stateful=True."
            )
        record = []
        self._fit(X, y, sample_weight, incremental=True, classes=classes, record=record)
        return record[0]

    def reset_state(self):
        """Start the stream over from the zero state, keeping the weights.

        Only meaningful with ``stateful=True``; the hidden state and the
        influence matrices are set to zero.

        Returns
        -------
        self : estimator
            The estimator, with its stream state reset.
        """
        check_is_fitted(self)
        self._model.reset_stream()
        return self

    def update_state(self, X, y=None):
        """Run the stream over observed rows without learning from them.

        Only with ``stateful=True``. The stream state (hidden state,
        influence matrices and, with output feedback, the value fed back
        next) moves exactly as ``partial_fit(X, y)`` would move it, but the
        weights and the optimiser stay as they are. Use it to synchronise
        the state with observed data before a closed-loop forecast
        (``predict``), for instance at held-out forecast origins, or after a
        model trained on sequences was switched to ``stateful=True``.

        Parameters
        ----------
        X : array-like of shape (n_steps, n_features)
            The observed rows, continuing the stream.
        y : array-like of shape (n_steps,) or (n_steps, n_outputs), default=None
            The observed targets. Needed with ``output_feedback=True``, where
            they are fed back as in ``partial_fit``; ignored otherwise.

        Returns
        -------
        self : estimator
            The estimator, with its stream state advanced.
        """
        check_is_fitted(self)
        if not self.stateful:
            raise ValueError(
                "update_state advances the state of a stream and needs "
                "stateful=True; a model fitted on sequences can be switched "
                "with set_params(stateful=True)."
            )
        self._sync_params()
        packed = self._validate_X(X)
        dtype = self._model.dtype
        if y is None:
            if self.output_feedback:
                raise ValueError(
                    "With output_feedback=True, update_state needs the "
                    "observed targets y: they are the values fed back."
                )
            Y = np.zeros((packed.values.shape[0], self.n_outputs_), dtype=dtype)
        else:
            y_checked = check_sequence_targets(y, packed, every_step=True)
            Y, _ = self._encode_targets(y_checked, first_call=False)
            Y = np.ascontiguousarray(Y, dtype=dtype)
        # No target counts: the weights are zero.
        zeros = np.zeros(Y.shape[0], dtype=dtype)
        data = TrainingSet(packed, Y, zeros[:1], zeros, True)
        self._model.advance(data.batch(np.arange(packed.n_sequences)), self._loss_name)
        return self

    def _print_progress(self, start):
        msg = f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}"
        if self.early_stopping and self.validation_scores_:
            msg += f", validation score = {self.validation_scores_[-1]:.6f}"
        msg += f", elapsed = {time.perf_counter() - start:.2f}s"
        print(msg, flush=True)

    def _print_stream_progress(self, n_steps):
        """Stream mode: a line every STREAM_REPORT_STEPS steps, not per call.

        Calls may bring one row each; the running loss is the mean loss per
        step since the previous line.
        """
        report = self.__dict__.setdefault("_stream_report", [0.0, 0])
        report[0] += self.loss_ * n_steps
        report[1] += n_steps
        if report[1] >= STREAM_REPORT_STEPS:
            print(
                f"Steps {self.t_}, running loss = {report[0] / report[1]:.8f}",
                flush=True,
            )
            report[:] = [0.0, 0]

    def _split_validation(self, packed, y_checked, n_seq):
        stratify = None
        if self._is_classifier_output():
            stratify = y_checked if not self._every_step else None
        train_idx, val_idx = train_test_split(
            np.arange(n_seq),
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small: with early_stopping=True and "
                f"validation_fraction={self.validation_fraction}, "
                f"{val_idx.shape[0]} of {n_seq} sequences are held out."
            )
        self._best_params = None
        return train_idx, (
            packed.take(val_idx),
            _take_targets(y_checked, packed, val_idx, self._every_step),
        )

    def _is_classifier_output(self):
        return False

    def _update_no_improvement_count(self, val):
        if self.early_stopping and val is not None:
            score = self._validation_score(*val)
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._flat_params.copy()
        else:
            if self.best_loss_ is None:
                self.best_loss_ = np.inf
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # -- public gradient access ------------------------------------------
    def loss_gradient(self, X, y, sample_weight=None):
        """Loss and exact gradient of the fitted model on given sequences.

        The model is not changed. The loss is the weighted mean over the
        given sequences of the per-sequence loss (for ``output="sequence"``,
        each sequence's mean over its steps), plus the L2 penalty
        ``alpha / (2 * sum(sample_weight)) * ||W||^2`` on the weight matrices
        (``n_sequences`` in place of the sum without weights): the objective
        a minibatch holding exactly these sequences descends.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, in any form ``fit`` accepts.
        y : array-like or list of array-like
            Targets, as for ``fit``.
        sample_weight : array-like of shape (n_sequences,), default=None
            Weight of each sequence.

        Returns
        -------
        loss : float
            The loss.
        gradient : dict of str to ndarray
            The gradient for every entry of ``params_``, same names, shapes
            and dtypes.
        """
        check_is_fitted(self)
        self._sync_params()
        packed = self._validate_X(X)
        y_checked = check_sequence_targets(y, packed, every_step=self._every_step)
        Y, _ = self._encode_targets(y_checked, first_call=False)
        dtype = self._model.dtype
        Y = np.ascontiguousarray(Y, dtype=dtype)
        weights, row_weights = self._check_weights(sample_weight, packed, dtype)
        data = TrainingSet(packed, Y, weights, row_weights, self._every_step)
        n_seq = packed.n_sequences
        workspace = self._model.workspace(n_seq, kernel_threads(n_seq, self.n_jobs))
        # All given sequences form one minibatch, penalty included.
        loss, grad = self._model.loss_and_gradient(
            data.batch(np.arange(n_seq)),
            weights.sum(),
            self._loss_name,
            self.alpha,
            workspace,
        )
        if grad is None:
            grad = np.zeros_like(self._model.params)
        views = self._model.cell.views(grad)
        return float(loss), {k: np.array(v) for k, v in views.items()}

    # -- prediction ----------------------------------------------------------
    def _validate_X(self, X):
        """Validate X of a fitted model: a stream, or sequences."""
        if self.stateful:
            packed = check_stream(self, X, reset=False)
        else:
            packed = check_sequences(self, X, reset=False)
        return _with_dtype(packed, self._model.dtype)

    def _raw_outputs(self, X):
        """Readout pre-activations: one row per sequence, or per step.

        In stream mode the rows run on from the current hidden state, which
        is left unchanged.
        """
        fast = rows.row_outputs(self, X)
        if fast is not None:
            return fast
        check_is_fitted(self)
        self._sync_params()
        packed = self._validate_X(X)
        raw = self._raw_outputs_packed(packed)
        rows.remember(self, trained=False)
        return raw, packed

    def _raw_outputs_packed(self, packed):
        return self._model.outputs(
            packed,
            self._loss_name,
            self._every_step,
            stream=self.stateful and self._model.stream is not None,
        )

    def _per_step_to_user(self, values, packed):
        return unpack_steps(values, packed)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_model")


def _with_dtype(packed, dtype):
    if packed.values.dtype == dtype:
        return packed
    return type(packed)(packed.values.astype(dtype), packed.offsets, packed.kind)


def _take_targets(y_checked, packed, idx, every_step):
    """The targets of the sequences ``idx``, packed like ``packed.take(idx)``."""
    if not every_step:
        return y_checked[idx]
    return y_checked[_gather_rows(packed.offsets, idx, packed.lengths[idx])]
