"""Hand-over to torch: the matching torch.nn recurrent layer and readout."""

import numpy as np

from ._model import describe

_TORCH_NONLINEARITY = {"tanh": "tanh", "relu": "relu"}
#: The torch.nn layer of each cell that has one.
_TORCH_LAYERS = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
#: The step of each cell without a torch.nn layer, for the refusal message.
_ELEMENTWISE_RECURRENCE = {
    "diagonal": "h = phi(W_ih x + w * h + b)",
    "egru": "of torch's GRU with u * h in place of W_hh h",
    "elstm": "of torch's LSTM with u * tile(h, 4) in place of W_hh h",
    "lru": (
        "h = lambda * h + gamma * (B x) (complex, per unit) and its output map "
        "y = phi(Re(C h) + D x + bias_y)"
    ),
    "glru": (
        "of the LRU with gamma * g * (B x) in place of gamma * (B x), g = "
        "sigmoid(weight_gate x + bias_gate)"
    ),
}


def to_torch(estimator, *, dtype=None):
    """The fitted net as a ``torch.nn`` recurrent layer and a linear readout.

    ``params_`` already has torch's names and layouts, so the weights are
    copied as they are into ``torch.nn.RNN`` (Elman cell), ``torch.nn.GRU``
    or ``torch.nn.LSTM``, one layer, ``batch_first=True``, and a
    ``torch.nn.Linear`` readout. The readout gives the decision values:
    apply ``torch.sigmoid`` (two classes: the probability of
    ``classes_[1]``) or ``torch.softmax`` for the classifier's
    probabilities. Every sequence starts from the zero state, as in skrtrl;
    to continue the stream of a stateful estimator, pass its current state
    as the layer's initial state (``h0 = torch.from_numpy(state["h"][None])``
    with ``state = initial_step_state(estimator, dtype=np.float64)``, and
    ``c0`` likewise for the LSTM).

    A pooled readout (``pooling="mean"``, ``"max"`` or ``"mean+last"``)
    reads the hidden states of every step: the readout is then a module
    whose ``forward(hidden, lengths=None)`` takes the layer's whole output
    (N, T, n_hidden), pools it over each sequence's own steps (the first
    ``lengths[i]`` of a padded batch; the padded steps are left out,
    whatever they hold; ``"mean+last"`` puts the hidden state of step
    ``lengths[i] - 1``, divided by ``lengths[i]``, after the mean) and
    applies its ``linear`` attribute, a ``torch.nn.Linear``.

    With ``output_feedback=True`` the layer's inputs are ``[x_t,
    f_{t-1}]``: ``weight_ih_l0`` holds ``params_["weight_ih"]`` followed by
    ``params_["weight_fb"]``, and the caller runs the closed loop one step
    at a time, feeding back the linked readout (zeros at the first step).

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator with ``cell`` "elman" (activation "tanh" or
        "relu", the two that ``torch.nn.RNN`` offers), "gru" or "lstm".
        The element-wise cells ``"diagonal"``, ``"egru"``, ``"elstm"``,
        ``"lru"`` and ``"glru"`` have no ``torch.nn`` layer: use
        :func:`to_onnx` or :func:`onnx_step_model` for them.
    dtype : torch.dtype or None, default=None
        Parameter type of the modules; None keeps the estimator's
        (``torch.float64`` for a model fitted on float64 data).

    Returns
    -------
    recurrent : torch.nn.RNN, torch.nn.GRU or torch.nn.LSTM
        The recurrent layer with the fitted weights.
    readout : torch.nn.Linear or torch.nn.Module
        The readout, ``n_hidden`` (``2 n_hidden`` for ``"mean+last"``) to
        ``n_outputs``: a ``torch.nn.Linear``
        applied to hidden states for ``pooling="last"``; for ``"mean"``,
        ``"max"`` and ``"mean+last"`` a module applied to the hidden states
        of every step (``readout(hidden, lengths)``, see above) holding the
        ``torch.nn.Linear`` as ``readout.linear`` (of ``2 n_hidden`` inputs
        for ``"mean+last"``).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.export import to_torch
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(30, 7, 2))
    >>> y = X[:, -3:, 0].sum(axis=1)
    >>> reg = RTRLRegressor(n_hidden=5, cell="lstm", max_iter=5, random_state=0)
    >>> reg = reg.fit(X, y)
    >>> lstm, linear = to_torch(reg)
    >>> with torch.no_grad():
    ...     hidden, _ = lstm(torch.from_numpy(X))
    ...     y_torch = linear(hidden[:, -1])[:, 0].numpy()
    >>> bool(np.allclose(y_torch, reg.predict(X), rtol=0, atol=1e-10))
    True

    A pooled readout on a padded batch of sequences of different lengths:

    >>> X = [rng.normal(size=(t, 2)) for t in (4, 7, 5)]
    >>> y = [x[:, 0].max() for x in X]
    >>> reg = RTRLRegressor(n_hidden=5, cell="gru", pooling="max", max_iter=5,
    ...                     random_state=0).fit(X, y)
    >>> gru, readout = to_torch(reg)
    >>> padded = torch.nn.utils.rnn.pad_sequence(
    ...     [torch.from_numpy(x) for x in X], batch_first=True)
    >>> with torch.no_grad():
    ...     y_torch = readout(gru(padded)[0], lengths=[4, 7, 5])[:, 0].numpy()
    >>> bool(np.allclose(y_torch, reg.predict(X), rtol=0, atol=1e-10))
    True
    """
    # The estimator is checked first: a model that cannot be exported is
    # refused the same way with or without PyTorch installed.
    model = describe(estimator)
    if model.cell in _ELEMENTWISE_RECURRENCE:
        raise ValueError(
            f"cell={model.cell!r} (an element-wise recurrence) has no torch.nn "
            "layer. Export it with skrtrl.export.to_onnx or "
            f"onnx_step_model, or build the step {_ELEMENTWISE_RECURRENCE[model.cell]} "
            "from params_ yourself."
        )
    if model.cell not in _TORCH_LAYERS:
        raise ValueError(
            f"to_torch supports cell in {sorted(_TORCH_LAYERS)}; cell="
            f"{model.cell!r} has no torch.nn layer. Export it with "
            "skrtrl.export.to_onnx or onnx_step_model instead."
        )
    if model.cell == "elman" and model.activation not in _TORCH_NONLINEARITY:
        raise ValueError(
            f"torch.nn.RNN offers the tanh and relu nonlinearities only; this "
            f"model has activation={model.activation!r}. Export it with "
            "skrtrl.export.to_onnx or onnx_step_model instead."
        )
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "to_torch needs PyTorch, which skrtrl does not install. Install it "
            "with `pip install torch` (a CPU build suffices)."
        ) from exc
    if dtype is None:
        dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    p = model.params
    weight_ih = p["weight_ih"]
    if model.feedback:
        weight_ih = np.hstack([weight_ih, p["weight_fb"]])
    layer_args = dict(
        input_size=weight_ih.shape[1],
        hidden_size=model.n_hidden,
        num_layers=1,
        bias=True,
        batch_first=True,
        dtype=dtype,
    )
    if model.cell == "elman":
        layer_args["nonlinearity"] = _TORCH_NONLINEARITY[model.activation]
    recurrent = getattr(torch.nn, _TORCH_LAYERS[model.cell])(**layer_args)
    if model.pooling == "last":
        readout = linear = torch.nn.Linear(model.n_hidden, model.n_outputs, dtype=dtype)
    else:
        from ._torch_pooling import PooledReadout

        readout = PooledReadout(
            model.pooling, model.n_hidden, model.n_outputs, dtype=dtype
        )
        linear = readout.linear
    values = {
        recurrent.weight_ih_l0: weight_ih,
        recurrent.weight_hh_l0: p["weight_hh"],
        recurrent.bias_ih_l0: p["bias_ih"],
        recurrent.bias_hh_l0: p["bias_hh"],
        linear.weight: p["weight_out"],
        linear.bias: p["bias_out"],
    }
    with torch.no_grad():
        for parameter, value in values.items():
            parameter.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return recurrent.eval(), readout.eval()
