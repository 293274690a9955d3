"""Hand-over to torch: the matching torch.nn recurrent layer and readout."""

import numpy as np

from ._model import describe

_TORCH_NONLINEARITY = {"tanh": "tanh", "relu": "relu"}
#: The step of each cell without a torch.nn layer, for the refusal message.
_ELEMENTWISE_RECURRENCE = {
    "diagonal": "h = phi(W_ih x + w * h + b)",
    "egru": "of torch's GRU with u * h in place of W_hh h",
    "elstm": "of torch's LSTM with u * tile(h, 4) in place of W_hh h",
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

    With ``output_feedback=True`` the layer's inputs are ``[x_t,
    f_{t-1}]``: ``weight_ih_l0`` holds ``params_["weight_ih"]`` followed by
    ``params_["weight_fb"]``, and the caller runs the closed loop one step
    at a time, feeding back the linked readout (zeros at the first step).

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator with ``cell`` "elman" (activation "tanh" or
        "relu", the two that ``torch.nn.RNN`` offers), "gru" or "lstm".
        The element-wise cells ``"diagonal"``, ``"egru"`` and ``"elstm"``
        have no ``torch.nn`` layer: use :func:`to_onnx` or
        :func:`onnx_step_model` for them.
    dtype : torch.dtype or None, default=None
        Parameter type of the modules; None keeps the estimator's
        (``torch.float64`` for a model fitted on float64 data).

    Returns
    -------
    recurrent : torch.nn.RNN, torch.nn.GRU or torch.nn.LSTM
        The recurrent layer with the fitted weights.
    readout : torch.nn.Linear
        The readout, ``n_hidden`` to ``n_outputs``.

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
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "to_torch needs PyTorch, which skrtrl does not install. Install it "
            "with `pip install torch` (a CPU build suffices)."
        ) from exc
    model = describe(estimator)
    if model.cell in _ELEMENTWISE_RECURRENCE:
        raise ValueError(
            f"cell={model.cell!r} (element-wise recurrence, weight_hh a vector) "
            "has no torch.nn layer. Export it with skrtrl.export.to_onnx or "
            f"onnx_step_model, or build the step {_ELEMENTWISE_RECURRENCE[model.cell]} "
            "from params_ yourself."
        )
    if model.cell == "elman" and model.activation not in _TORCH_NONLINEARITY:
        raise ValueError(
            f"torch.nn.RNN offers the tanh and relu nonlinearities only; this "
            f"model has activation={model.activation!r}. Export it with "
            "skrtrl.export.to_onnx or onnx_step_model instead."
        )
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
        recurrent = torch.nn.RNN(
            nonlinearity=_TORCH_NONLINEARITY[model.activation], **layer_args
        )
    elif model.cell == "gru":
        recurrent = torch.nn.GRU(**layer_args)
    else:
        recurrent = torch.nn.LSTM(**layer_args)
    readout = torch.nn.Linear(model.n_hidden, model.n_outputs, dtype=dtype)
    values = {
        recurrent.weight_ih_l0: weight_ih,
        recurrent.weight_hh_l0: p["weight_hh"],
        recurrent.bias_ih_l0: p["bias_ih"],
        recurrent.bias_hh_l0: p["bias_hh"],
        readout.weight: p["weight_out"],
        readout.bias: p["bias_out"],
    }
    with torch.no_grad():
        for parameter, value in values.items():
            parameter.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return recurrent.eval(), readout.eval()
