"""Plain-numpy references for every registered cell (the conformance suite).

Everything here is built on the numpy steps of
``skrtrl/inspection/_cell_steps.py`` (``CELL_STEPS[name]``, reached through
``_helpers.steps_from``) and on the names and layout of ``params_``; no code
is shared with the compiled kernels. From a cell's forward step and its
``vjp`` the references derive, for any registered cell:

* :func:`forward_loss`: the weighted loss of a forward pass (for finite
  differences), with the previous target or the model's own previous output
  fed back when asked;
* :func:`rtrl`: real-time recurrent learning, the influence
  ``d s_t / d theta`` carried forward (``P_t = J_t P_{t-1} + I_t``, with the
  state Jacobian ``J_t`` and the immediate term ``I_t`` taken from ``vjp``
  with unit vectors), optionally cut to SnAp-1's per-unit blocks, optionally
  through the feedback path, with an SGD step after every target;
* :func:`bptt`: (truncated) backpropagation through time through the step
  records, with an SGD step after every target.

With a learning rate of 0 the last two accumulate the gradient of the loss
at fixed weights (the minibatch gradient); with a positive one they are the
per-step updates of ``update="step"`` and of streams.

A sequence is a tuple ``(x, Y, w)``: inputs (T, m), reference targets
(T, o) (regression values, 0/1 for a binary classifier, one-hot rows for
several classes) and per-step weights (T,), 0 where a step has no target.
The loss names are the estimators': ``"squared_error"``,
``"log_loss_binary"``, ``"log_loss"``.

Conventions a new cell must follow to be covered: its entry in
``CELL_STEPS`` offers ``_step``, ``vjp`` and ``state_per_unit`` like the
others (state = [h, ...], h first; ``output`` and ``output_vjp``, what the
readout reads, default to h), its ``params_`` holds ``weight_out`` and
``bias_out`` for the readout, the L2 penalty acts on the entries whose
names start with ``weight`` (and on the LRU's matrices ``B_*``, ``C_*``,
``D``), and row r of every recurrent parameter belongs to hidden unit
``r % n_hidden`` (SnAp-1's blocks).
"""

import re

import numpy as np
from scipy.special import expit, softmax

from _helpers import hidden_size, loss_and_output_grad, state_size, steps_from

READOUT = ("weight_out", "bias_out")
#: Weights without the ``weight`` prefix (the LRU's, named as in its paper).
OTHER_WEIGHTS = ("B_re", "B_im", "C_re", "C_im", "D")


def penalized(name):
    """Whether L2 regularisation acts on the parameter ``name`` (a stack's
    names too: a layer's suffix ``_l<k>`` aside)."""
    base = re.sub(r"_l\d+$", "", name)
    return name.startswith("weight") or base in OTHER_WEIGHTS


class Layout:
    """The entries of ``params`` as one vector, in the order of ``params_``."""

    def __init__(self, params):
        self.names = list(params)
        self.shapes = {k: np.shape(v) for k, v in params.items()}
        self.slices, pos = {}, 0
        for name in self.names:
            size = int(np.prod(self.shapes[name]))
            self.slices[name] = slice(pos, pos + size)
            pos += size
        self.size = pos

    def vector(self, params):
        return np.concatenate([np.ravel(params[k]) for k in self.names]).astype(float)

    def arrays(self, vector):
        return {k: vector[self.slices[k]].reshape(self.shapes[k]) for k in self.names}

    def penalty_mask(self):
        """1 for the weights L2 regularisation acts on, 0 for biases."""
        mask = np.zeros(self.size)
        for name in self.names:
            if penalized(name):
                mask[self.slices[name]] = 1.0
        return mask

    def unit_blocks(self, n_hidden, n_state):
        """SnAp-1's entries of the influence (n_state, size): state entry k
        and a recurrent parameter of row r both belong to unit ``% n``."""
        keep = np.zeros((n_state, self.size), dtype=bool)
        state_unit = np.arange(n_state) % n_hidden
        for name in self.names:
            if name in READOUT:
                continue
            shape = self.shapes[name]
            rows = np.arange(shape[0]).repeat(int(np.prod(shape[1:])))
            keep[:, self.slices[name]] = state_unit[:, None] == (rows % n_hidden)
        return keep


def penalty(params, alpha, scale=1.0):
    """``scale * alpha / 2 * sum of squared weights`` (not biases)."""
    squares = [np.sum(v**2) for k, v in params.items() if penalized(k)]
    return 0.5 * scale * alpha * float(sum(squares))


def cell_params(params):
    """What the cell's numpy step reads: with output feedback, ``weight_fb``
    joins ``weight_ih`` as its last columns (the inputs are [x_t, f])."""
    if "weight_fb" not in params:
        return params
    return dict(params, weight_ih=np.hstack([params["weight_ih"], params["weight_fb"]]))


def link(loss, z):
    """The fed-back output: the prediction, or the class probabilities."""
    if loss == "squared_error":
        return z
    if loss == "log_loss_binary":
        return expit(z)
    return softmax(z)


def link_jacobian(loss, z):
    if loss == "squared_error":
        return np.eye(z.shape[0])
    if loss == "log_loss_binary":
        p = expit(z)
        return np.diag(p * (1 - p))
    p = softmax(z)
    return np.diag(p) - np.outer(p, p)


def _inputs(x, fed):
    return x if fed is None else np.concatenate([x, fed])


def _add_cell_gradient(layout, grads, n_inputs, out):
    """Add ``vjp``'s parameter gradients (one per batch row) into the rows of
    ``out`` (rows, size), splitting the feedback columns of ``weight_ih`` off
    into ``weight_fb``."""
    for name, g in grads.items():
        if name == "weight_ih" and "weight_fb" in layout.slices:
            parts = {"weight_ih": g[..., :n_inputs], "weight_fb": g[..., n_inputs:]}
        else:
            parts = {name: g}
        for part, value in parts.items():
            out[:, layout.slices[part]] += value.reshape(out.shape[0], -1)


def forward_loss(cell, params, activation, loss, sequences, feedback=None):
    """Sum over the sequences and steps of ``w_t * L_t`` (fixed weights).

    ``feedback``: None, ``"teacher"`` (the previous target is fed back) or
    ``"free"`` (the model's own previous output, after the link). The
    sequences run as one batch, padded at the end (which no earlier step
    sees).
    """
    p = cell_params(params)
    W, b = params["weight_out"], params["bias_out"]
    o, n = W.shape
    N, T = len(sequences), max(x.shape[0] for x, _, _ in sequences)
    X = np.zeros((N, T, sequences[0][0].shape[1]))
    Y, w = np.zeros((N, T, o)), np.zeros((N, T))
    for i, (x, y, weights) in enumerate(sequences):
        X[i, : x.shape[0]], Y[i, : x.shape[0]], w[i, : x.shape[0]] = x, y, weights
    if feedback == "free":
        s, fed, Z = np.zeros((N, state_size(cell, n))), np.zeros((N, o)), []
        for t in range(T):
            U = np.concatenate([X[:, t], fed], axis=1)[:, None]
            steps = steps_from(cell, p, U, activation, s)
            s = steps.S[:, 1]
            Z.append(steps.output(0) @ W.T + b)
            fed = np.array([link(loss, z) for z in Z[-1]])
        Z = np.stack(Z, axis=1)
    else:
        if feedback == "teacher":
            X = np.concatenate([X, np.pad(Y[:, :-1], ((0, 0), (1, 0), (0, 0)))], axis=2)
        steps = steps_from(cell, p, X, activation)
        Z = np.stack([steps.output(t) for t in range(T)], axis=1) @ W.T + b
    return sum(
        w[i, t] * loss_and_output_grad(loss, Z[i, t], Y[i, t])[0]
        for i, t in zip(*np.nonzero(w))
    )


def _sgd_step(layout, theta, grad, weight, alpha, lr):
    """Add the step's penalty into ``grad``; the parameters after SGD."""
    grad += weight * alpha * layout.penalty_mask() * theta
    return theta - lr * grad


def rtrl(cell, params, activation, loss, sequences, *, lr=0.0, alpha=0.0,
         feedback=None, snap1=False):  # fmt: skip
    """Real-time recurrent learning in numpy, each sequence from zero.

    After every step with a nonzero weight w_t the parameters take the SGD
    step ``-lr * (w_t dL_t/dtheta + w_t alpha theta_weights)``; the influence
    is carried on under the changing weights (as Williams & Zipser's
    real-time algorithm does). ``snap1`` cuts the influence to the per-unit
    blocks after every step. ``feedback`` as in :func:`forward_loss`; with
    ``"free"`` the influence runs through the fed-back output too.

    Returns a dict: ``params`` (after the updates), ``gradient`` (flat sum
    of the per-step gradients, penalty included), ``loss`` (sum of w_t L_t),
    ``state``, ``fed`` and ``influence`` (the state's, (S, size), after the
    last sequence) and ``layout``.
    """
    layout = Layout(params)
    theta = layout.vector(params)
    n = params["weight_out"].shape[1]
    o = params["weight_out"].shape[0]
    S = state_size(cell, n)
    keep = layout.unit_blocks(n, S) if snap1 else None
    total, total_loss = np.zeros(layout.size), 0.0
    for x, Y, w in sequences:
        m = x.shape[1]
        s, P = np.zeros(S), np.zeros((S, layout.size))
        fed = None if feedback is None else np.zeros(o)
        P_fed = np.zeros((o, layout.size))
        for t in range(x.shape[0]):
            p = layout.arrays(theta)
            # One batch row per state entry k: vjp with e_k gives row k of
            # the state Jacobian, of d s_t / d u_t and of the immediate term.
            u = _inputs(x[t], fed)
            steps = steps_from(cell, cell_params(p), np.tile(u, (S, 1, 1)),
                               activation, np.tile(s, (S, 1)))  # fmt: skip
            J, grads, J_u = steps.vjp(0, np.eye(S))
            immediate = np.zeros((S, layout.size))
            _add_cell_gradient(layout, grads, m, immediate)
            P = J @ P + immediate
            if feedback == "free":
                P += J_u[:, m:] @ P_fed
            if keep is not None:
                P[~keep] = 0.0
            s = steps.S[0, 1]
            # The output map: y and d y / d theta = (d y / d s) P + its
            # own parameters' part, row by row (vjp with unit vectors).
            y = steps.output(0)[0]
            J_y, grads_y, _ = steps.output_vjp(0, np.eye(S, n))
            P_y = J_y[:n] @ P
            immediate_y = np.zeros((S, layout.size))
            _add_cell_gradient(layout, grads_y, m, immediate_y)
            P_y += immediate_y[:n]
            W, b = p["weight_out"], p["bias_out"]
            z = W @ y + b
            P_z = W @ P_y
            P_z[:, layout.slices["weight_out"]] += np.kron(np.eye(o), y)
            P_z[:, layout.slices["bias_out"]] += np.eye(o)
            if w[t]:
                value, dz = loss_and_output_grad(loss, z, Y[t])
                total_loss += w[t] * value
                grad = w[t] * (dz @ P_z)
                theta = _sgd_step(layout, theta, grad, w[t], alpha, lr)
                total += grad
            if feedback == "teacher":
                fed = Y[t].astype(float)
            elif feedback == "free":
                fed, P_fed = link(loss, z), link_jacobian(loss, z) @ P_z
    return dict(params=layout.arrays(theta), gradient=total, loss=total_loss,
                state=s, fed=fed, influence=P, layout=layout)  # fmt: skip


def bptt(cell, params, activation, loss, sequences, *, truncation=None, lr=0.0,
         alpha=0.0, feedback=None):  # fmt: skip
    """(Truncated) backpropagation through time in numpy, with an SGD step
    after every target as :func:`rtrl`.

    The gradient of each L_t flows back through the records of steps t,
    t-1, ..., t-k+1 (k = ``truncation``; to the start without): the
    activations stored when each step ran, and the current weights.
    ``feedback`` is None or ``"teacher"``. Returns what :func:`rtrl` does
    but the influence.
    """
    layout = Layout(params)
    theta = layout.vector(params)
    n = params["weight_out"].shape[1]
    o = params["weight_out"].shape[0]
    S = state_size(cell, n)
    total, total_loss = np.zeros(layout.size), 0.0
    for x, Y, w in sequences:
        m = x.shape[1]
        s, records = np.zeros(S), []
        fed = None if feedback is None else np.zeros(o)
        for t in range(x.shape[0]):
            p = layout.arrays(theta)
            steps = steps_from(cell, cell_params(p), _inputs(x[t], fed)[None, None],
                               activation, s[None])  # fmt: skip
            records.append(steps)
            s = steps.S[0, 1]
            if w[t]:
                W, b = p["weight_out"], p["bias_out"]
                y = steps.output(0)[0]
                value, dz = loss_and_output_grad(loss, W @ y + b, Y[t])
                total_loss += w[t] * value
                grad = np.zeros(layout.size)
                grad[layout.slices["weight_out"]] = w[t] * np.outer(dz, y).ravel()
                grad[layout.slices["bias_out"]] = w[t] * dz
                g, grads_y, _ = steps.output_vjp(0, (W.T @ (w[t] * dz))[None])
                _add_cell_gradient(layout, grads_y, m, grad[None])
                g = g[0]
                depth = t + 1 if truncation is None else min(truncation, t + 1)
                current = cell_params(p)
                for record in records[t - depth + 1 :][::-1]:
                    record.p = current
                    g_prev, grads, _ = record.vjp(0, g[None])
                    _add_cell_gradient(layout, grads, m, grad[None])
                    g = g_prev[0]
                theta = _sgd_step(layout, theta, grad, w[t], alpha, lr)
                total += grad
            if feedback == "teacher":
                fed = Y[t].astype(float)
    return dict(params=layout.arrays(theta), gradient=total, loss=total_loss,
                state=s, fed=fed, layout=layout)  # fmt: skip


# -- stacks of layers ------------------------------------------------------------
# ``cell`` is one name (every layer's) or a tuple of names, one per layer.
def _layer_cells(cell, L):
    return (cell,) * L if isinstance(cell, str) else tuple(cell)


def _stack_steps(cell, layers, x, states, activation):
    """One step of every layer on input x (m,) from ``states``: the new
    states and the top layer's output y (layer k reads layer k-1's y: h, or
    the LRUs' output map)."""
    new, u = [], x
    for name, layer, s in zip(_layer_cells(cell, len(layers)), layers, states):
        steps = steps_from(name, layer, u[None, None], activation, s[None])
        new.append(steps.S[0, 1])
        u = steps.output(0)[0]
    return new, u


def stack_forward_loss(cell, params, activation, loss, sequences):
    """As :func:`forward_loss`, for a stack: layer k reads layer k-1's y."""
    layers = _stack_params(cell, params)
    W, b = params["weight_out"], params["bias_out"]
    total = 0.0
    for x, Y, w in sequences:
        states = _zero_states(cell, layers)
        for t in range(x.shape[0]):
            states, y = _stack_steps(cell, layers, x[t], states, activation)
            if w[t]:
                z = W @ y + b
                total += w[t] * loss_and_output_grad(loss, z, Y[t])[0]
    return total


def stack_pooled_outputs(cell, params, activation, X, pooling):
    """Readout pre-activations of the top layer's pooled y, one row per
    sequence (each from the zero state, over its own steps only)."""
    layers = _stack_params(cell, params)
    rows = []
    for x in X:
        states = _zero_states(cell, layers)
        H = []
        for t in range(x.shape[0]):
            states, y = _stack_steps(cell, layers, x[t], states, activation)
            H.append(y)
        z = pool_hidden(np.array(H), pooling)
        rows.append(params["weight_out"] @ z + params["bias_out"])
    return np.array(rows)


def stack_pooled_loss(cell, params, activation, loss, sequences, pooling):
    """As :func:`pooled_loss`, for a stack (the top layer's y pooled)."""
    Z = stack_pooled_outputs(
        cell, params, activation, [x for x, _, _ in sequences], pooling
    )
    return sum(
        w * loss_and_output_grad(loss, z, y)[0] for z, (_, y, w) in zip(Z, sequences)
    )


def _zero_states(cell, layers):
    names = _layer_cells(cell, len(layers))
    return [np.zeros(state_size(name, layer["weight_out"].shape[1]))
            for name, layer in zip(names, layers)]  # fmt: skip


def _layer_count(params):
    """Layers of a stack's ``params_``: the largest ``_l<k>`` suffix + 1."""
    return 1 + max(
        int(name.rsplit("_l", 1)[1]) for name in params if not name.endswith("_out")
    )


def _stack_params(cell, params):
    L = _layer_count(params)
    layers = []
    for k in range(L):
        name = _layer_cells(cell, L)[k]
        suffix = f"_l{k}"
        layer = {
            key[: -len(suffix)]: np.asarray(value, dtype=float)
            for key, value in params.items()
            if key.endswith(suffix)
        }
        if "nu_log" in layer:  # the LRUs: one row per unit
            n = layer["nu_log"].shape[0]
        else:
            gates = {"egru": 3, "elstm": 4, "gru": 3, "lstm": 4}.get(name, 1)
            n = layer["weight_ih"].shape[0] // gates
        layer["weight_out"] = np.zeros((0, n))
        layer["bias_out"] = np.zeros(0)
        layers.append(layer)
    return layers


def stack_rtrl(cell, params, activation, loss, sequences, *, lr=0.0, alpha=0.0,
               local=False, reset=True):  # fmt: skip
    """RTRL through a stack in numpy, with an SGD step after every target.

    Every layer k carries P^k = d s^k / d theta (all parameters, dense):
    ``P^k_t = J^k_t P^k_{t-1} + I^k_t + (d s^k_t / d x^k_t) Y^{k-1}_t``
    (exact), with Y^k = d y^k / d theta the influence of layer k's output
    (``Y^k = (d y / d s) P^k + (d y / d x) Y^{k-1}`` + its output map's own
    parameters; the h rows of P^k where y is h), the Jacobians and
    immediate terms taken from the numpy steps' ``vjp`` and ``output_vjp``
    with unit vectors. ``local``: the layer-local approximation by its
    definition: P^k keeps its own layer's columns only (no term through the
    input), and the error of a target goes down through the current step
    only, ``delta^{k-1} = (d y^k_t / d x^k_t)^T delta^k`` on layer k-1's y
    (through the state and the output map's direct path), each layer's
    gradient ``delta^k Y^k`` (its own columns). ``reset``: each sequence
    from zero (else one stream carried on). Returns as :func:`rtrl`, with
    ``state`` the list of the layers' states.
    """
    layout = Layout(params)
    theta = layout.vector(params)
    W0 = params["weight_out"]
    o, n_top = W0.shape
    sizes = [layer["weight_out"].shape[1] for layer in _stack_params(cell, params)]
    L = len(sizes)
    names = _layer_cells(cell, L)
    S = [state_size(name, n) for name, n in zip(names, sizes)]
    total, total_loss = np.zeros(layout.size), 0.0
    states = P = None
    for x, Y, w in sequences:
        if reset or states is None:
            states = [np.zeros(s) for s in S]
            P = [np.zeros((s, layout.size)) for s in S]
        for t in range(x.shape[0]):
            p = layout.arrays(theta)
            layers = _stack_params(cell, p)
            u, J_x, P_y = x[t], [], []
            P_in = np.zeros((x.shape[1], layout.size))
            for k, layer in enumerate(layers):
                n = sizes[k]
                U, s0 = np.tile(u, (S[k], 1, 1)), np.tile(states[k], (S[k], 1))
                steps = steps_from(names[k], layer, U, activation, s0)
                J, grads, B = steps.vjp(0, np.eye(S[k]))
                immediate = np.zeros((S[k], layout.size))
                for name, g in grads.items():
                    immediate[:, layout.slices[f"{name}_l{k}"]] += g.reshape(S[k], -1)
                P[k] = J @ P[k] + immediate
                if k and not local:
                    P[k] += B @ P_in
                # The output: d y / d s, its own parameters', d y / d x.
                J_y, grads_y, D = steps.output_vjp(0, np.eye(S[k], n))
                J_y, D = J_y[:n], D[:n]
                Y_k = J_y @ P[k]
                for name, g in grads_y.items():
                    Y_k[:, layout.slices[f"{name}_l{k}"]] += g[:n].reshape(n, -1)
                if k and not local:
                    Y_k += D @ P_in
                P_y.append(Y_k)
                J_x.append(J_y @ B[:, :] + D)
                states[k] = steps.S[0, 1]
                u = steps.output(0)[0]
                P_in = Y_k
            Wt, b = p["weight_out"], p["bias_out"]
            h = u
            z = Wt @ h + b
            if not w[t]:
                continue
            value, dz = loss_and_output_grad(loss, z, Y[t])
            total_loss += w[t] * value
            grad = np.zeros(layout.size)
            grad[layout.slices["weight_out"]] = w[t] * np.outer(dz, h).ravel()
            grad[layout.slices["bias_out"]] = w[t] * dz
            delta = w[t] * (Wt.T @ dz)
            grad += delta @ P_y[-1]
            if local:
                for k in range(L - 1, 0, -1):
                    delta = J_x[k].T @ delta
                    grad += delta @ P_y[k - 1]
            theta = _sgd_step(layout, theta, grad, w[t], alpha, lr)
            total += grad
    return dict(params=layout.arrays(theta), gradient=total, loss=total_loss,
                state=states, layout=layout)  # fmt: skip


def pool_hidden(H, pooling):
    """The pooled readout input of one sequence's outputs ``H`` (T, n):
    the last row, their mean or their per-unit maximum over the T steps, or
    the mean followed by the last row divided by T (2n numbers)."""
    if pooling == "last":
        return H[-1]
    if pooling == "mean+last":
        return np.concatenate([H.mean(axis=0), H[-1] / H.shape[0]])
    return H.mean(axis=0) if pooling == "mean" else H.max(axis=0)


def cell_outputs(cell, params, activation, x):
    """y after every step of one sequence ``x`` (T, m), from the zero state:
    h, or the LRUs' output map."""
    steps = steps_from(cell, params, x[None], activation)
    return np.array([steps.output(t)[0] for t in range(x.shape[0])])


def pooled_outputs(cell, params, activation, X, pooling):
    """Readout pre-activations of pooled outputs y, one row per sequence;
    each sequence runs alone, over its own steps only."""
    W, b = params["weight_out"], params["bias_out"]
    return np.array(
        [W @ pool_hidden(cell_outputs(cell, params, activation, x), pooling) + b
         for x in X]
    )  # fmt: skip


def pooled_loss(cell, params, activation, loss, sequences, pooling):
    """Sum over sequences ``(x, y, w)`` (a target y per sequence, weight w)
    of ``w * L(readout of the pooled h, y)`` (for finite differences)."""
    Z = pooled_outputs(cell, params, activation, [x for x, _, _ in sequences], pooling)
    return sum(
        w * loss_and_output_grad(loss, z, y)[0] for z, (_, y, w) in zip(Z, sequences)
    )


def pooled_rtrl(cell, params, activation, loss, sequences, pooling, *, snap1=False):
    """RTRL in numpy for a pooled readout, at fixed weights: the influence
    P_t (cut to SnAp-1's blocks with ``snap1``), and beside it the sum of
    d y_t / d theta (the h rows of P_t, or through the output map) (mean)
    or, for each unit, its row at the step of the unit's first maximum of
    y (max), or the mean's rows above the last step's / T (mean+last); the
    readout's influence at the end is W A. Returns the flat gradient sum
    of ``w dL/dtheta`` and its layout.
    """
    layout = Layout(params)
    n = hidden_size(cell, params)
    o = params["weight_out"].shape[0]
    S = state_size(cell, n)
    keep = layout.unit_blocks(n, S) if snap1 else None
    W, b = params["weight_out"], params["bias_out"]
    total = np.zeros(layout.size)
    for x, y, w in sequences:
        s, P = np.zeros(S), np.zeros((S, layout.size))
        H, rows = [], []
        for t in range(x.shape[0]):
            steps = steps_from(cell, params, np.tile(x[t], (S, 1, 1)), activation,
                               np.tile(s, (S, 1)))  # fmt: skip
            J, grads, _ = steps.vjp(0, np.eye(S))
            immediate = np.zeros((S, layout.size))
            _add_cell_gradient(layout, grads, x.shape[1], immediate)
            P = J @ P + immediate
            if keep is not None:
                P[~keep] = 0.0
            s = steps.S[0, 1]
            J_y, grads_y, _ = steps.output_vjp(0, np.eye(S, n))
            immediate_y = np.zeros((S, layout.size))
            _add_cell_gradient(layout, grads_y, x.shape[1], immediate_y)
            H.append(steps.output(0)[0])
            rows.append(J_y[:n] @ P + immediate_y[:n])
        H, rows = np.array(H), np.array(rows)
        if pooling == "mean":
            A = rows.mean(axis=0)
        elif pooling == "mean+last":
            A = np.concatenate([rows.mean(axis=0), rows[-1] / len(rows)])
        else:
            at = H.argmax(axis=0)  # the first maximum of each unit
            A = rows[at, np.arange(n)]
        h = pool_hidden(H, pooling)
        P_z = W @ A
        P_z[:, layout.slices["weight_out"]] += np.kron(np.eye(o), h)
        P_z[:, layout.slices["bias_out"]] += np.eye(o)
        _, dz = loss_and_output_grad(loss, W @ h + b, y)
        total += w * (dz @ P_z)
    return dict(gradient=total, layout=layout)
