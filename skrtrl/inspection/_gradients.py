"""What the gradients of a fitted recurrent net say about its use of time.

Three views, each computed by a plain numpy pass over the fitted parameters
(``estimator.params_``), independent of the compiled kernels:

* :func:`credit_over_time`: how much of the gradient of the loss at the end of
  a sequence comes from each earlier step, by distance from the end (the
  picture of vanishing and exploding gradients);
* :func:`input_saliency`: the derivative of the final output with respect to
  every input at every step;
* :func:`recurrent_jacobian_spectrum`: the singular values and spectral radius
  of the step-to-step Jacobian ``dh_t / dh_{t-1}`` along each trajectory.

Every cell is covered: each brings its own step derivatives (see
``_cell_steps.py``). The state that carries information from step to step
is h for the Elman, diagonal and GRU cells, and ``[h, c]`` for the LSTM.
"""

from numbers import Integral

import numpy as np
from scipy.special import expit, softmax
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from .._base import BaseRTRL
from .._sequences import check_sequence_targets, check_sequences
from ._cell_steps import CELL_STEPS

__all__ = ["credit_over_time", "input_saliency", "recurrent_jacobian_spectrum"]

#: Recurrent parameters, in the order of ``params_``.


# -- shared machinery ---------------------------------------------------------
def _check_estimator(estimator, caller):
    """Fitted, sequence-mode estimator: its parameters in float64, its cell."""
    if not isinstance(estimator, BaseRTRL):
        raise TypeError(
            f"{caller} needs an RTRLRegressor or RTRLClassifier; got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    if estimator.stateful:
        raise ValueError(
            f"{caller} does not support stateful=True: a stream has no "
            "sequence ends to take gradients from and runs on from a hidden "
            "state that is not zero. Fit a model with stateful=False, or copy "
            "its params_ into one."
        )
    if estimator.output_feedback:
        raise ValueError(
            f"{caller} does not support output_feedback=True: its numpy steps "
            "have no feedback path, so they would inspect another network."
        )
    if any(name.endswith("_l0") for name in estimator.params_):
        raise ValueError(
            f"{caller} does not support stacked layers yet (n_hidden="
            f"{estimator.n_hidden!r}): its numpy steps follow one layer. "
            "Inspect a model with one layer (an int n_hidden)."
        )
    pooling = getattr(estimator._cell, "pooling", "last")
    if pooling != "last":
        raise ValueError(
            f"{caller} differentiates the readout of the last step; this "
            f"model was fitted to read pooling={pooling!r} of every step "
            "(fit one with pooling='last' to inspect it). Use loss_gradient "
            "for its exact gradient."
        )
    # Take in entries of params_ that were replaced by new arrays, as predict
    # does, so that the inspected model is the one that predicts.
    estimator._sync_params()
    params = {
        name: np.asarray(value, dtype=np.float64)
        for name, value in estimator.params_.items()
    }
    return params, estimator._cell.name


class _Trajectories:
    """Forward pass of the fitted cell over packed sequences, padded.

    Attributes (N sequences, T steps of the longest): ``X`` (N, T, m)
    inputs, zero on padded steps; ``lengths`` (N,); ``valid`` (N, T), the
    mask of real steps; ``steps``, the cell's numpy steps (see
    ``_cell_steps``), whose ``S[:, t + 1]`` is the state after step t.
    """

    def __init__(self, params, packed, cell, activation):
        lengths = np.asarray(packed.lengths, dtype=np.intp)
        N, T, m = lengths.shape[0], int(lengths.max()), packed.n_features
        valid = np.arange(T)[None, :] < lengths[:, None]
        X = np.zeros((N, T, m))
        X[valid] = packed.values
        self.X, self.lengths, self.valid = X, lengths, valid
        self.steps = CELL_STEPS[cell](params, X, activation)

    @property
    def last_hidden(self):
        """What the readout reads (h; the LRU's output map y) after the last
        real step of each sequence, shape (N, n)."""
        steps = self.steps
        ends = self.lengths - 1
        out = np.zeros((ends.shape[0], steps.n))
        for t in np.unique(ends):
            out[ends == t] = steps.output(t)[ends == t]
        return out

    def backward(self, g_last, on_step):
        """Backpropagate ``dQ/dy`` at each sequence's last step to its start.

        Q is a function of what the readout reads at each sequence's last
        step only (h, or the LRU's y), with ``dQ/dy_{T_s} = g_last[s]``. For
        every step t, from the last back to the first, calls ``on_step(t,
        grads, d_input)`` with the derivatives of Q with respect to the
        recurrent parameters as used at step t (a dict of arrays with a
        leading axis of N; the output map's included) and to the inputs
        ``x_t`` (N, m); both are zero for sequences shorter than t + 1
        steps.
        """
        steps = self.steps
        N = self.lengths.shape[0]
        g = np.zeros((N, steps.S.shape[2]))
        ends = self.lengths - 1
        for t in range(self.X.shape[1] - 1, -1, -1):
            g_out = np.where((ends == t)[:, None], g_last, 0.0)
            g_state, map_grads, map_input = steps.output_vjp(t, g_out)
            g = g + g_state
            g_prev, grads, d_input = steps.vjp(t, g)
            on_step(t, {**grads, **map_grads}, d_input + map_input)
            g = g_prev


def _pack(estimator, X):
    """Validate X against the fitted model (no attribute is set)."""
    return check_sequences(estimator, X, reset=False)


def _by_distance(values, lengths):
    """Per-step values (N, T, ...) reordered by distance from the end.

    Entry ``[s, d]`` is the value of step ``lengths[s] - 1 - d``; NaN where
    ``d >= lengths[s]``.
    """
    N, T = values.shape[:2]
    d = np.arange(T)
    t = lengths[:, None] - 1 - d[None, :]
    inside = t >= 0
    out = np.full(values.shape, np.nan)
    rows = np.broadcast_to(np.arange(N)[:, None], (N, T))
    out[inside] = values[rows[inside], t[inside]]
    return out


def _final_loss_gradient(estimator, params, traj, packed, y):
    """dL/dz of the loss at the last step of each sequence, shape (N, o).

    The loss is the estimator's training loss of one target: half the mean
    squared error over the outputs (regressor), the binary or multiclass
    log-loss on the logits (classifier). No sample weights, no penalty.
    """
    every_step = estimator.output == "sequence"
    y_checked = check_sequence_targets(y, packed, every_step=every_step)
    if every_step:
        y_checked = y_checked[packed.offsets[1:] - 1]
    Y, loss = estimator._encode_targets(y_checked, first_call=False)
    Y = np.asarray(Y, dtype=np.float64).reshape(packed.n_sequences, -1)
    z = traj.last_hidden @ params["weight_out"].T + params["bias_out"]
    if loss == "squared_error":
        return (z - Y) / z.shape[1]
    if loss == "log_loss_binary":
        return expit(z) - Y
    return softmax(z, axis=1) - Y


# -- credit over time -----------------------------------------------------------
def credit_over_time(estimator, X, y, *, return_contributions=False):
    """Gradient of the final-step loss, split by the step it comes from.

    For each sequence the loss ``L`` of its last step is differentiated with
    respect to the recurrent parameters (``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh``; for ``cell="lru"`` its own, the output map's
    included, which only the last step uses). Each of these parameters is
    used at every step,
    so the gradient is a sum over the steps t of the terms

    .. math::

        \\frac{\\partial L}{\\partial W_{hh}} = \\sum_t \\delta_t
        h_{t-1}^\\top, \\quad
        \\frac{\\partial L}{\\partial W_{ih}} = \\sum_t \\delta_t x_t^\\top,
        \\quad \\frac{\\partial L}{\\partial b} = \\sum_t \\delta_t,

    with :math:`\\delta_t = \\partial L / \\partial a_t` the error at the
    pre-activation of step t (the formulas of the Elman cell; every cell's
    gradient is such a sum over steps, the gated cells' with one error per
    gate). The contribution of step t is the term with index t, the
    derivative of L with respect to the parameters as used at step t only;
    its norm, read by distance from the end, is the standard picture
    of vanishing (norms decaying geometrically with distance) and exploding
    (growing) gradients. The term of step t carries the information of the
    inputs up to step t and the error that has travelled back to it through
    ``T - 1 - t`` Jacobians of the cell state (h; ``[h, c]`` for the
    LSTM).

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator with ``stateful=False`` (any cell).
    X : array-like or list of array-like
        Sequences, in any form ``fit`` accepts.
    y : array-like or list of array-like
        Targets, as for ``fit``. With ``output="sequence"`` only the target
        of the last step of each sequence is used.

    return_contributions : bool, default=False
        Also return the contributions themselves (memory: the size of the
        recurrent parameters times the number of steps).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With attributes

        distances : ndarray of shape (max_len,)
            ``0, 1, ..., max_len - 1``: distance from the last step
            (0 is the last step itself).
        norms : ndarray of shape (n_sequences, max_len)
            Euclidean norm of the contribution of step ``T_s - 1 - d`` of
            sequence s, over all four recurrent parameters together (the
            Frobenius norm of the concatenated arrays). NaN where the
            sequence is shorter than ``d + 1`` steps.
        mean_norms : ndarray of shape (max_len,)
            Mean of ``norms`` over the sequences long enough for each
            distance.
        contributions : list of dict of str to ndarray
            Only with ``return_contributions=True``: for each sequence, the
            contribution to each recurrent parameter, an array of shape
            ``(T_s,) + params_[name].shape`` indexed by distance like
            ``norms``. Summed over the distances, it is the gradient of the
            last-step loss.

    Notes
    -----
    The loss is the estimator's loss of one target (half the mean squared
    error over the outputs, or the log-loss), without sample weights and
    without the L2 penalty. For a model with ``output="last"``, alpha=0 and
    one sequence, the summed contributions therefore equal the recurrent
    entries of :meth:`~skrtrl.RTRLRegressor.loss_gradient`. The two biases
    enter every step identically, so their contributions are equal.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.inspection import credit_over_time
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(20, 6))
    >>> y = X[:, 0]
    >>> reg = RTRLRegressor(n_hidden=4, random_state=0).partial_fit(X, y)
    >>> credit = credit_over_time(reg, X, y)
    >>> credit.distances
    array([0, 1, 2, 3, 4, 5])
    >>> credit.norms.shape, credit.mean_norms.shape
    ((20, 6), (6,))
    """
    params, cell = _check_estimator(estimator, "credit_over_time")
    packed = _pack(estimator, X)
    traj = _Trajectories(params, packed, cell, estimator.activation)
    dz = _final_loss_gradient(estimator, params, traj, packed, y)
    N, T = traj.valid.shape
    step_norms = np.zeros((N, T))
    per_step = {} if return_contributions else None

    def on_step(t, grads, d_input):
        step_norms[:, t] = np.sqrt(
            sum((g.reshape(N, -1) ** 2).sum(axis=1) for g in grads.values())
        )
        if per_step is not None:
            per_step[t] = grads

    traj.backward(dz @ params["weight_out"], on_step)
    norms = _by_distance(step_norms, traj.lengths)
    result = Bunch(
        distances=np.arange(norms.shape[1]),
        norms=norms,
        mean_norms=_nanmean_columns(norms),
    )
    if return_contributions:
        result.contributions = [
            {
                name: np.stack(
                    [per_step[t][name][s] for t in range(length - 1, -1, -1)]
                )
                for name in per_step[0]
            }
            for s, length in enumerate(traj.lengths)
        ]
    return result


def _nanmean_columns(values):
    """Mean of every column over its non-NaN entries (every column has one)."""
    present = ~np.isnan(values)
    return np.where(present, values, 0.0).sum(axis=0) / present.sum(axis=0)


# -- input saliency ---------------------------------------------------------------
def _output_directions(estimator, params, traj, output_index):
    """Per sequence, the readout row (with sign) that defines the output.

    Returns an array (N, n_outputs): the derivative of the inspected scalar
    output with respect to the readout z.
    """
    N = traj.lengths.shape[0]
    n_outputs = params["weight_out"].shape[0]
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        n_classes = classes.shape[0]
        if output_index is None:
            z = traj.last_hidden @ params["weight_out"].T + params["bias_out"]
            index = (z[:, 0] > 0).astype(np.intp) if n_outputs == 1 else z.argmax(1)
        else:
            _check_index(output_index, n_classes, "classes_")
            index = np.full(N, output_index, dtype=np.intp)
        if n_outputs == 1:
            # The one logit is the log-odds of classes_[1]; the log-odds of
            # classes_[0] is its negative.
            return np.where(index == 1, 1.0, -1.0)[:, None]
        return np.eye(n_outputs)[index]
    if output_index is None:
        if n_outputs > 1:
            raise ValueError(
                f"The regressor has {n_outputs} outputs; pass output_index to "
                "choose the one to differentiate."
            )
        output_index = 0
    _check_index(output_index, n_outputs, "outputs")
    return np.tile(np.eye(n_outputs)[output_index], (N, 1))


def _check_index(index, size, what):
    if (
        not isinstance(index, Integral)
        or isinstance(index, bool)
        or not 0 <= index < size
    ):
        raise ValueError(
            f"output_index must be an integer in [0, {size}) (one of the "
            f"{size} {what}); got {index!r}."
        )


def input_saliency(estimator, X, *, output_index=None):
    """Derivative of the final output with respect to every input.

    For each sequence of length T, the gradient ``d f / d x_t`` of one scalar
    output f of its last step with respect to the input ``x_t`` of every
    step t: where in time, and in which features, the output is sensitive.

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator with ``stateful=False`` (any cell). With
        ``output="sequence"``, the output of the last step is inspected.
    X : array-like or list of array-like
        Sequences, in any form ``fit`` accepts.

    output_index : int, default=None
        Which output f is. Regressor: the index of the output (may be
        omitted for a single output). Classifier: an index into
        ``classes_``, f being the logit of that class; ``None`` takes the
        predicted class of each sequence. With two classes the model has
        one logit, ``decision_function``, the log-odds of ``classes_[1]``;
        the log-odds of ``classes_[0]`` is its negative.

    Returns
    -------
    saliency : list of ndarray of shape (T_i, n_features)
        For each sequence, ``saliency[i][t, j] = d f / d X_i[t, j]``. A 2D X
        (univariate sequences) gives ``n_features = 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.inspection import input_saliency
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(20, 5, 3))
    >>> y = X[:, -1, 0]
    >>> reg = RTRLRegressor(n_hidden=4, random_state=0).partial_fit(X, y)
    >>> saliency = input_saliency(reg, X)
    >>> len(saliency), saliency[0].shape
    (20, (5, 3))
    """
    params, cell = _check_estimator(estimator, "input_saliency")
    packed = _pack(estimator, X)
    return _input_saliency_packed(estimator, params, cell, packed, output_index)


def _input_saliency_packed(estimator, params, cell, packed, output_index):
    traj = _Trajectories(params, packed, cell, estimator.activation)
    df_dz = _output_directions(estimator, params, traj, output_index)
    grads = np.zeros(traj.X.shape)

    def on_step(t, _, d_input):
        grads[:, t] = d_input

    traj.backward(df_dz @ params["weight_out"], on_step)
    return [grads[s, :length] for s, length in enumerate(traj.lengths)]


# -- Jacobian spectrum ------------------------------------------------------------
def recurrent_jacobian_spectrum(estimator, X, *, k=None):
    """Singular values of the step-to-step Jacobian along each trajectory.

    At step t the hidden state moves by ``h_t = phi(a_t)`` with
    ``a_t = W_ih x_t + W_hh h_{t-1} + b``, so the Jacobian

    .. math::

        J_t = \\frac{\\partial h_t}{\\partial h_{t-1}}
        = \\mathrm{diag}(\\phi'(a_t)) W_{hh}

    maps a perturbation of the previous state into the current one (the
    formula of the Elman cell; the diagonal cell's J_t is diagonal, the
    GRU's is the derivative of its update through the gates, and for the
    LSTM the state is ``[h, c]``, so J_t is 2 n_hidden x 2 n_hidden), and the
    error signals of backpropagation travel back through its transposes.
    Largest singular values below 1 along the whole trajectory mean
    vanishing gradients (a product of ``d`` such Jacobians has norm at most
    the product of their largest singular values), above 1 possibly
    exploding ones.

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator with ``stateful=False`` (any cell).
    X : array-like or list of array-like
        Sequences, in any form ``fit`` accepts.

    k : int, default=None
        Number of singular values to keep, the largest first; ``None``
        keeps all of them (``n_hidden``, or ``2 * n_hidden`` for the LSTM).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With attributes

        singular_values : list of ndarray of shape (T_i, k)
            For each sequence and step t (``0 .. T_i - 1``), the k largest
            singular values of ``J_t``, in decreasing order.
        spectral_radius : list of ndarray of shape (T_i,)
            For each sequence and step, the largest modulus of the
            eigenvalues of ``J_t``.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.inspection import recurrent_jacobian_spectrum
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(20, 6))
    >>> reg = RTRLRegressor(n_hidden=4, random_state=0).partial_fit(X, X[:, 0])
    >>> spectrum = recurrent_jacobian_spectrum(reg, X, k=2)
    >>> spectrum.singular_values[0].shape, spectrum.spectral_radius[0].shape
    ((6, 2), (6,))
    >>> bool(np.all(spectrum.spectral_radius[0] <= spectrum.singular_values[0][:, 0]))
    True
    """
    params, cell = _check_estimator(estimator, "recurrent_jacobian_spectrum")
    packed = _pack(estimator, X)
    traj = _Trajectories(params, packed, cell, estimator.activation)
    size = traj.steps.S.shape[2]
    if k is None:
        k = size
    elif isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= size:
        raise ValueError(
            f"k must be None or an integer in [1, {size}] (the size of the "
            f"cell state); got {k!r}."
        )
    N, T = traj.valid.shape
    sv = np.zeros((N, T, k))
    radius = np.zeros((N, T))
    for t in range(T):
        rows = traj.valid[:, t]
        J = traj.steps.jacobian(t)[rows]
        sv[rows, t] = np.linalg.svd(J, compute_uv=False)[:, :k]
        radius[rows, t] = np.abs(np.linalg.eigvals(J)).max(axis=1)
    return Bunch(
        singular_values=[sv[s, :length] for s, length in enumerate(traj.lengths)],
        spectral_radius=[radius[s, :length] for s, length in enumerate(traj.lengths)],
    )
