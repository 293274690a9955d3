"""One step of each cell in plain numpy, with its derivatives.

The inspection tools differentiate a fitted model through time without the
compiled kernels, so that what they show is computed independently of the
training code. Each class here runs a cell forward over a batch of padded
sequences, keeps what the backward pass needs, and offers per step:

* ``vjp(t, g)``: given ``g = dQ / ds_t`` for the state after step t, the
  derivatives of Q with respect to the previous state, to the parameters
  *as used at step t only*, and to the input ``x_t``;
* ``jacobian(t)``: ``d s_t / d s_{t-1}`` for every sequence.

The state ``s`` is h for the Elman, diagonal and GRU cells, ``[h, c]``
(2n numbers) for the LSTM and ``[Re h, Im h]`` for the LRU. Parameter names
and layouts are those of ``params_`` (torch's, gates in torch's order).

What the readout reads after step t is ``output(t)``: h for every cell but
the LRU, whose output map ``y_t = f(Re(C h_t) + D x_t + b)`` has parameters
of its own; ``output_vjp(t, g)`` takes ``g = dQ / dy_t`` to the state, to
those parameters and to ``x_t``.
"""

import numpy as np
from scipy.special import expit

__all__ = ["CELL_STEPS"]


def _activation(name):
    """phi and phi' (from the pre-activation a and the value h = phi(a))."""
    if name == "tanh":
        return np.tanh, lambda a, h: 1.0 - h * h
    if name == "logistic":
        return expit, lambda a, h: h * (1.0 - h)
    if name == "relu":
        return (lambda a: np.maximum(a, 0.0)), (lambda a, h: (a > 0).astype(a.dtype))
    if name == "identity":
        return (lambda a: a), (lambda a, h: np.ones_like(a))
    raise ValueError(f"Unknown activation {name!r}.")  # pragma: no cover


class _Steps:
    """Forward pass over padded inputs ``X`` (N, T, m); subclasses add maths.

    After ``__init__``, ``S[:, t]`` is the state before step t (``S[:, 0] =
    0``) and ``S[:, t + 1]`` the state after it.
    """

    #: Number of state entries per hidden unit (h; or h and c).
    state_per_unit = 1
    #: Rows of ``bias_ih`` per hidden unit (one per gate).
    gates = 1

    def __init__(self, params, X, activation):
        self.p = params
        self.X = X
        self.activation = activation
        self.n = self.hidden_size(params)
        N, T, _ = X.shape
        self.S = np.zeros((N, T + 1, self.state_per_unit * self.n))
        self.cache = []
        for t in range(T):
            self.S[:, t + 1], step_cache = self._step(X[:, t], self.S[:, t], activation)
            self.cache.append(step_cache)

    @classmethod
    def hidden_size(cls, params):
        """The number of hidden units of ``params`` (the readout may read
        more: ``pooling="mean+last"``)."""
        return params["bias_ih"].shape[0] // cls.gates

    def hidden(self, state):
        """The h part of a state array (last axis)."""
        return state[..., : self.n]

    def output(self, t):
        """What the readout reads after step t (N, n): h."""
        return self.hidden(self.S[:, t + 1])

    def output_vjp(self, t, g):
        """``output``'s vector-Jacobian product: dQ / d s_t, the gradients of
        the output map's own parameters (none) and dQ / d x_t."""
        d_state = np.zeros(g.shape[:1] + self.S.shape[2:])
        d_state[:, : self.n] = g
        return d_state, {}, np.zeros_like(self.X[:, t])


class ElmanSteps(_Steps):
    """``h_t = phi(W_ih x_t + W_hh h_{t-1} + b_ih + b_hh)``."""

    def _step(self, x, h, activation):
        phi, dphi = _activation(activation)
        p = self.p
        a = x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias_ih"] + p["bias_hh"]
        h_new = phi(a)
        return h_new, dphi(a, h_new)

    def vjp(self, t, g):
        delta = g * self.cache[t]
        h = self.S[:, t]
        grads = {
            "weight_ih": delta[:, :, None] * self.X[:, t, None, :],
            "weight_hh": delta[:, :, None] * h[:, None, :],
            "bias_ih": delta,
            "bias_hh": delta,
        }
        return delta @ self.p["weight_hh"], grads, delta @ self.p["weight_ih"]

    def jacobian(self, t):
        return self.cache[t][:, :, None] * self.p["weight_hh"]


class DiagonalSteps(ElmanSteps):
    """``h_t = phi(W_ih x_t + w * h_{t-1} + b_ih + b_hh)``, w = ``weight_hh``."""

    def _step(self, x, h, activation):
        phi, dphi = _activation(activation)
        p = self.p
        a = x @ p["weight_ih"].T + p["weight_hh"] * h + p["bias_ih"] + p["bias_hh"]
        h_new = phi(a)
        return h_new, dphi(a, h_new)

    def vjp(self, t, g):
        delta = g * self.cache[t]
        grads = {
            "weight_ih": delta[:, :, None] * self.X[:, t, None, :],
            "weight_hh": delta * self.S[:, t],
            "bias_ih": delta,
            "bias_hh": delta,
        }
        return delta * self.p["weight_hh"], grads, delta @ self.p["weight_ih"]

    def jacobian(self, t):
        diag = self.cache[t] * self.p["weight_hh"]
        return diag[:, :, None] * np.eye(self.n)


def _split(array, parts):
    return np.split(array, parts, axis=-1)


# The gated cells' recurrent term, ``weight_hh`` acting on h for every gate:
# a (G n x n) matrix (full cells) or a (G n,) vector of per-unit weights
# (element-wise cells, each unit seeing only its own past).
def _recurrent(h, weight_hh):
    """``h @ weight_hh.T`` for every gate: (N, G n)."""
    if weight_hh.ndim == 1:
        return np.tile(h, weight_hh.shape[0] // h.shape[1]) * weight_hh
    return h @ weight_hh.T


def _recurrent_grad(d_gates, h, weight_hh):
    """Gradient of ``weight_hh`` from that of the gate pre-activations."""
    if weight_hh.ndim == 1:
        return d_gates * np.tile(h, weight_hh.shape[0] // h.shape[1])
    return d_gates[:, :, None] * h[:, None, :]


def _recurrent_back(d_gates, weight_hh, n):
    """``d_gates @ weight_hh``: the gradient reaching h, summed over gates."""
    if weight_hh.ndim == 1:
        weighted = d_gates * weight_hh
        return weighted.reshape(weighted.shape[0], -1, n).sum(axis=1)
    return d_gates @ weight_hh


def _gate_blocks(weight_hh, n_gates, n):
    """The G blocks of ``weight_hh`` as (n x n) matrices (diagonal if a vector)."""
    blocks = np.split(weight_hh, n_gates, axis=0)
    if weight_hh.ndim == 1:
        return [np.diag(block) for block in blocks]
    return blocks


class GRUSteps(_Steps):
    """torch's GRU: gates r, z, n; ``h' = (1 - z) * n + z * h``."""

    gates = 3

    def _step(self, x, h, activation):
        p = self.p
        gi = x @ p["weight_ih"].T + p["bias_ih"]
        gh = _recurrent(h, p["weight_hh"]) + p["bias_hh"]
        (gi_r, gi_z, gi_n), (gh_r, gh_z, gh_n) = _split(gi, 3), _split(gh, 3)
        r = expit(gi_r + gh_r)
        z = expit(gi_z + gh_z)
        cand = np.tanh(gi_n + r * gh_n)
        return (1.0 - z) * cand + z * h, (r, z, cand, gh_n)

    def vjp(self, t, g):
        r, z, cand, gh_n = self.cache[t]
        h = self.S[:, t]
        d_cand = g * (1.0 - z) * (1.0 - cand * cand)
        d_z = g * (h - cand) * z * (1.0 - z)
        d_r = d_cand * gh_n * r * (1.0 - r)
        d_gi = np.concatenate([d_r, d_z, d_cand], axis=1)
        d_gh = np.concatenate([d_r, d_z, d_cand * r], axis=1)
        grads = {
            "weight_ih": d_gi[:, :, None] * self.X[:, t, None, :],
            "weight_hh": _recurrent_grad(d_gh, h, self.p["weight_hh"]),
            "bias_ih": d_gi,
            "bias_hh": d_gh,
        }
        d_h = g * z + _recurrent_back(d_gh, self.p["weight_hh"], self.n)
        return d_h, grads, d_gi @ self.p["weight_ih"]

    def jacobian(self, t):
        r, z, cand, gh_n = self.cache[t]
        h = self.S[:, t]
        W_r, W_z, W_n = _gate_blocks(self.p["weight_hh"], 3, self.n)
        d_cand = (1.0 - z) * (1.0 - cand * cand)
        J = z[:, :, None] * np.eye(self.n)
        J += ((h - cand) * z * (1.0 - z))[:, :, None] * W_z
        J += (d_cand * r)[:, :, None] * W_n
        J += (d_cand * gh_n * r * (1.0 - r))[:, :, None] * W_r
        return J


class LSTMSteps(_Steps):
    """torch's LSTM: gates i, f, g, o; state ``[h, c]``."""

    state_per_unit = 2
    gates = 4

    def _step(self, x, state, activation):
        p = self.p
        n = self.n
        h, c = state[:, :n], state[:, n:]
        a = x @ p["weight_ih"].T + _recurrent(h, p["weight_hh"])
        a += p["bias_ih"] + p["bias_hh"]
        a_i, a_f, a_g, a_o = _split(a, 4)
        i, f, g, o = expit(a_i), expit(a_f), np.tanh(a_g), expit(a_o)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return np.concatenate([o * tc, c_new], axis=1), (i, f, g, o, tc)

    def vjp(self, t, g_state):
        i, f, g, o, tc = self.cache[t]
        n = self.n
        h, c = self.S[:, t, :n], self.S[:, t, n:]
        g_h, g_c = g_state[:, :n], g_state[:, n:]
        d_c = g_c + g_h * o * (1.0 - tc * tc)
        d_a = np.concatenate(
            [
                d_c * g * i * (1.0 - i),
                d_c * c * f * (1.0 - f),
                d_c * i * (1.0 - g * g),
                g_h * tc * o * (1.0 - o),
            ],
            axis=1,
        )
        grads = {
            "weight_ih": d_a[:, :, None] * self.X[:, t, None, :],
            "weight_hh": _recurrent_grad(d_a, h, self.p["weight_hh"]),
            "bias_ih": d_a,
            "bias_hh": d_a,
        }
        d_h = _recurrent_back(d_a, self.p["weight_hh"], n)
        d_state = np.concatenate([d_h, d_c * f], axis=1)
        return d_state, grads, d_a @ self.p["weight_ih"]

    def jacobian(self, t):
        i, f, g, o, tc = self.cache[t]
        n = self.n
        c = self.S[:, t, n:]
        W_i, W_f, W_g, W_o = _gate_blocks(self.p["weight_hh"], 4, n)
        dc_dh = (
            (g * i * (1.0 - i))[:, :, None] * W_i
            + (c * f * (1.0 - f))[:, :, None] * W_f
            + (i * (1.0 - g * g))[:, :, None] * W_g
        )
        dh_dc_new = o * (1.0 - tc * tc)
        N = f.shape[0]
        J = np.zeros((N, 2 * n, 2 * n))
        J[:, :n, :n] = (tc * o * (1.0 - o))[:, :, None] * W_o
        J[:, :n, :n] += dh_dc_new[:, :, None] * dc_dh
        J[:, :n, n:] = (dh_dc_new * f)[:, :, None] * np.eye(n)
        J[:, n:, :n] = dc_dh
        J[:, n:, n:] = f[:, :, None] * np.eye(n)
        return J


class EGRUSteps(GRUSteps):
    """Element-wise GRU: torch's GRU with ``weight_hh`` a (3n,) vector."""


class ELSTMSteps(LSTMSteps):
    """Element-wise LSTM: torch's LSTM with ``weight_hh`` a (4n,) vector."""


#: The LRU reads its three logarithms clipped to [-LRU_LOG_BOUND, LRU_LOG_BOUND].
LRU_LOG_BOUND = 20.0


def lru_exp(v):
    """exp of ``v`` clipped to [-20, 20], as the LRU reads its logarithms,
    and its derivative (0 beyond the bound: exp would overflow there)."""
    e = np.exp(np.clip(v, -LRU_LOG_BOUND, LRU_LOG_BOUND))
    return e, np.where(np.abs(v) <= LRU_LOG_BOUND, e, 0.0)


def lru_lambda(params):
    """The LRU's lambda = exp(-exp(nu_log) + i exp(theta_log)): its real and
    imaginary parts, and the derivatives of the two clipped exponentials."""
    (enu, d_nu), (eth, d_th) = lru_exp(params["nu_log"]), lru_exp(params["theta_log"])
    modulus = np.exp(-enu)
    return modulus * np.cos(eth), modulus * np.sin(eth), d_nu, d_th


class LRUSteps(_Steps):
    """The linear recurrent unit (Orvieto et al., 2023): per unit the complex
    ``h_t = lambda h_{t-1} + gamma (B x_t)``, ``lambda = exp(-exp(nu_log) +
    i exp(theta_log))``, ``gamma = exp(gamma_log)``, ``B = B_re + i B_im``;
    state ``[Re h, Im h]``; output ``y_t = f(C_re Re h_t - C_im Im h_t + D
    x_t + bias_y)``, f the activation. ``nu_log``, ``theta_log`` and
    ``gamma_log`` are read clipped to [-20, 20] (``LRU_LOG_BOUND``)."""

    state_per_unit = 2

    @classmethod
    def hidden_size(cls, params):
        return params["nu_log"].shape[0]

    def _exp(self, name):
        return lru_exp(self.p[name])

    def _lambda(self):
        return lru_lambda(self.p)

    def _gate(self, x):
        """The input gate of what is stored (``GLRUSteps``): none here."""
        return None

    def _step(self, x, state, activation):
        p = self.p
        n = self.n
        a, b, _, _ = self._lambda()
        gamma = self._exp("gamma_log")[0]
        hr, hi = state[:, :n], state[:, n:]
        u_re, u_im = x @ p["B_re"].T, x @ p["B_im"].T
        gate = self._gate(x)
        if gate is not None:
            u_re, u_im = gate * u_re, gate * u_im
        lam_h = (a * hr - b * hi, b * hr + a * hi)
        new = np.concatenate([lam_h[0] + gamma * u_re, lam_h[1] + gamma * u_im], axis=1)
        return new, (u_re, u_im, gate)

    def vjp(self, t, g):
        # lambda and gamma from the parameters as they are now, (the gate
        # and) B x from the step (as the other cells' weights and gate
        # values).
        p = self.p
        n = self.n
        u_re, u_im, gate = self.cache[t]
        a, b, enu, eth = self._lambda()
        hr, hi = self.S[:, t, :n], self.S[:, t, n:]
        lr, li = a * hr - b * hi, b * hr + a * hi
        gamma, d_gamma = self._exp("gamma_log")
        gr, gi = g[:, :n], g[:, n:]
        x = self.X[:, t]
        # gamma's factor on B x, behind the gate if there is one.
        gain = gamma if gate is None else gamma * gate
        grads = {
            "nu_log": -enu * (gr * lr + gi * li),
            "theta_log": eth * (gi * lr - gr * li),
            "gamma_log": d_gamma * (gr * u_re + gi * u_im),
            "B_re": (gr * gain)[:, :, None] * x[:, None, :],
            "B_im": (gi * gain)[:, :, None] * x[:, None, :],
        }
        d_state = np.concatenate([a * gr + b * gi, a * gi - b * gr], axis=1)
        d_x = (gr * gain) @ p["B_re"] + (gi * gain) @ p["B_im"]
        if gate is not None:
            # Through the gate's pre-activation: gamma (1 - g) (i B x).
            e = gamma * (1.0 - gate) * (gr * u_re + gi * u_im)
            grads["weight_gate"] = e[:, :, None] * x[:, None, :]
            grads["bias_gate"] = e
            d_x = d_x + e @ p["weight_gate"]
        return d_state, grads, d_x

    def jacobian(self, t):
        a, b, _, _ = self._lambda()
        n, N = self.n, self.S.shape[0]
        J = np.zeros((N, 2 * n, 2 * n))
        J[:, :n, :n] = J[:, n:, n:] = np.diag(a)
        J[:, :n, n:] = -np.diag(b)
        J[:, n:, :n] = np.diag(b)
        return J

    def _map(self, t):
        p = self.p
        n = self.n
        state = self.S[:, t + 1]
        pre = state[:, :n] @ p["C_re"].T - state[:, n:] @ p["C_im"].T
        pre = pre + self.X[:, t] @ p["D"].T + p["bias_y"]
        phi, dphi = _activation(self.activation)
        y = phi(pre)
        return state, y, dphi(pre, y)

    def output(self, t):
        return self._map(t)[1]

    def output_vjp(self, t, g):
        p = self.p
        n = self.n
        state, _, slope = self._map(t)
        e = g * slope
        grads = {
            "C_re": e[:, :, None] * state[:, None, :n],
            "C_im": -e[:, :, None] * state[:, None, n:],
            "D": e[:, :, None] * self.X[:, t, None, :],
            "bias_y": e,
        }
        d_state = np.concatenate([e @ p["C_re"], -e @ p["C_im"]], axis=1)
        return d_state, grads, e @ p["D"]


class GLRUSteps(LRUSteps):
    """The gated LRU: the LRU storing ``g_t * (B x_t)``, ``g_t =
    sigmoid(weight_gate x_t + bias_gate)`` (per unit, from the input
    only)."""

    def _gate(self, x):
        return expit(x @ self.p["weight_gate"].T + self.p["bias_gate"])


CELL_STEPS = {
    "elman": ElmanSteps,
    "diagonal": DiagonalSteps,
    "gru": GRUSteps,
    "lstm": LSTMSteps,
    "egru": EGRUSteps,
    "elstm": ELSTMSteps,
    "lru": LRUSteps,
    "glru": GLRUSteps,
}
