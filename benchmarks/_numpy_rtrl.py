"""Plain numpy RTRL for the Elman cell, the reference the kernel is timed against.

The maths is that of the Elman cell of ``skrtrl._kernels``: n hidden units, m inputs,
o outputs, q = m + n + 1, recurrent parameters held as one matrix
``theta`` (n x q) = [W_ih | W_hh | b_ih] plus a separate ``bias_hh``. With
z_t = [x_t, h_{t-1}, 1] and a_t = theta z_t + bias_hh, h_t = tanh(a_t) and
the influence matrix P_t (n x n*q, P_t[k, i*q + j] = d h_t[k] / d theta[i, j])
obeys

    P_t = (D_t W_hh) P_{t-1} + D_t E_t,   D_t = diag(1 - h_t**2),

where D_t E_t only adds d_t[k] * z_t to the k-th diagonal block. Each step
is one matrix product plus that diagonal update, and the gradient is
accumulated at every step as ``grad_theta += P_t^T (W_out^T dL/dy_t)``.

The reference handles one sequence (batch 1) with the squared loss; the
functions at the bottom pack sequences for the kernel and check that both
give the same loss and gradients.
"""

import numpy as np
from skrtrl._kernels._rtrl import rtrl_minibatch

from skrtrl._cells import ElmanCell, kernel_codes
from skrtrl._parallel import blas_single_threaded
from skrtrl._sequences import TrainingBatch


def init_params(n_hidden, n_inputs, n_outputs, rng, dtype=np.float64):
    """Random Elman parameters, uniform in (-1/sqrt(n), 1/sqrt(n)).

    Parameters
    ----------
    n_hidden, n_inputs, n_outputs : int
        Sizes n, m and o.
    rng : numpy.random.Generator
        Source of the random numbers.
    dtype : dtype, default=np.float64
        Floating type of the parameters.

    Returns
    -------
    params : dict of str to ndarray
        ``theta`` (n, q), ``bias_hh`` (n,), ``W_out`` (o, n), ``b_out`` (o,).
    """
    q = n_inputs + n_hidden + 1
    bound = 1.0 / np.sqrt(n_hidden)

    def uniform(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    return {
        "theta": uniform(n_hidden, q),
        "bias_hh": uniform(n_hidden),
        "W_out": uniform(n_outputs, n_hidden),
        "b_out": uniform(n_outputs),
    }


def rtrl_sequence(X, Y, params, weight=1.0, every_step=True):
    """Loss and exact RTRL gradient of one sequence, in plain numpy.

    Parameters
    ----------
    X : ndarray of shape (T, m)
        Inputs.
    Y : ndarray of shape (T, o) or (1, o)
        Targets at every step, or only for the last step when
        ``every_step`` is False.
    params : dict of str to ndarray
        Parameters as returned by :func:`init_params`.
    weight : float, default=1.0
        Weight of each loss term.
    every_step : bool, default=True
        Loss at every step, or only at the last.

    Returns
    -------
    loss : float
        Weighted sum of the squared-loss terms (each averaged over outputs).
    grads : dict of str to ndarray
        ``theta``, ``W_out`` and ``b_out`` gradients. The ``bias_hh``
        gradient equals the last column of the ``theta`` gradient.
    """
    theta, bias_hh = params["theta"], params["bias_hh"]
    W_out, b_out = params["W_out"], params["b_out"]
    n, q = theta.shape
    n_steps, m = X.shape
    n_out = W_out.shape[0]
    W_hh = theta[:, m : m + n]
    diagonal = (np.arange(n), np.arange(n))

    h = np.zeros(n, dtype=theta.dtype)
    z = np.empty(q, dtype=theta.dtype)
    z[-1] = 1.0
    P_old = np.zeros((n, n * q), dtype=theta.dtype)
    P_new = np.empty_like(P_old)
    loss = 0.0
    grad_theta = np.zeros(n * q, dtype=theta.dtype)
    grad_W_out = np.zeros_like(W_out)
    grad_b_out = np.zeros_like(b_out)

    for t in range(n_steps):
        z[:m] = X[t]
        z[m : m + n] = h
        h = np.tanh(theta @ z + bias_hh)
        d = 1.0 - h * h
        if t == 0:
            P_new.fill(0.0)  # P_0 = 0: the product would be zero.
        else:
            np.matmul(d[:, None] * W_hh, P_old, out=P_new)
        P_new.reshape(n, n, q)[diagonal] += d[:, None] * z

        if every_step or t == n_steps - 1:
            diff = W_out @ h + b_out - Y[t if every_step else 0]
            loss += weight * 0.5 * float(diff @ diff) / n_out
            dz = weight * diff / n_out
            g = W_out.T @ dz
            grad_theta += g @ P_new
            grad_W_out += np.outer(dz, h)
            grad_b_out += dz
        P_old, P_new = P_new, P_old

    grads = {
        "theta": grad_theta.reshape(n, q),
        "W_out": grad_W_out,
        "b_out": grad_b_out,
    }
    return loss, grads


class KernelCall:
    """A ready-to-run call of the exact-RTRL kernel (``rtrl_minibatch``) on
    packed sequences.

    Packs the sequences and allocates the workspace once (as
    ``ElmanCell.workspace`` lays it out), so that :meth:`__call__` runs the
    kernel alone. The kernel writes each sequence's loss and gradient into
    its own row of the workspace; :meth:`result` sums the rows.

    Parameters
    ----------
    X : ndarray of shape (B, T, m)
        Inputs of B sequences, padded to length T.
    Y : ndarray of shape (B, T, o) or (B, 1, o)
        Targets at every step, or only for the last step.
    params : dict of str to ndarray
        Parameters as returned by :func:`init_params`.
    weight : float, default=1.0
        Weight of each loss term.
    every_step : bool, default=True
        Loss at every step, or only at the last.
    lengths : array-like of int, default=None
        Length of each sequence (at most T); all T if None.
    n_threads : int, default=1
        Kernel (OpenMP) threads over the sequences. BLAS threads inside the
        kernel are set as the estimators set them, see :meth:`blas_limits`.
    """

    def __init__(
        self, X, Y, params, weight=1.0, every_step=True, lengths=None, n_threads=1
    ):
        n_seq, n_steps, m = X.shape
        dtype = params["theta"].dtype
        n, q = params["theta"].shape
        n_out = params["W_out"].shape[0]
        if lengths is None:
            lengths = np.full(n_seq, n_steps)
        self.params = params
        self.every_step = bool(every_step)
        self.n_threads = n_threads
        self.lengths = np.ascontiguousarray(lengths, dtype=np.intp)
        Y = np.ascontiguousarray(Y.reshape(-1, n_out), dtype=dtype)
        self.batch = TrainingBatch(
            np.ascontiguousarray(X.reshape(-1, m), dtype=dtype),
            Y,
            np.arange(n_seq, dtype=np.intp) * n_steps,
            np.arange(n_seq, dtype=np.intp) * (Y.shape[0] // n_seq),
            self.lengths,
            np.full(Y.shape[0], weight, dtype=dtype),
            self.every_step,
        )
        self.cell = ElmanCell(n, m, n_out)
        self.flat = np.concatenate(
            [
                p.ravel()
                for p in (params[k] for k in ("theta", "bias_hh", "W_out", "b_out"))
            ]
        ).astype(dtype)
        self.workspace = self.cell.workspace(n_seq, n_threads, dtype)

    def blas_limits(self):
        """Context in which to call the kernel: the BLAS thread limit the
        estimators set (one BLAS thread when several kernel threads run, or
        when the products are small)."""
        return blas_single_threaded(self.n_threads, self.params["theta"].shape[0])

    def __call__(self):
        """Run the kernel once, writing the per-sequence rows."""
        rtrl_minibatch(
            *kernel_codes(self.cell, "squared_error"),
            self.batch,
            1.0,  # weight_scale
            self.flat,
            self.workspace,
        )

    def result(self):
        """Loss and gradients summed over the sequences.

        Returns
        -------
        loss : float
            Weighted sum of the loss terms.
        grads : dict of str to ndarray
            ``theta``, ``W_out`` and ``b_out`` gradients.
        """
        n, q = self.params["theta"].shape
        n_out = self.params["W_out"].shape[0]
        n_seq = self.lengths.shape[0]
        total = self.workspace["grad"][:n_seq].sum(axis=0)
        grads = {
            "theta": total[: n * q].reshape(n, q),
            "W_out": total[n * q : n * q + n_out * n].reshape(n_out, n),
            "b_out": total[n * q + n_out * n :],
        }
        return float(self.workspace["loss"][:n_seq].sum()), grads


def check_against_kernel(n_hidden=5, n_inputs=2, n_outputs=3, seed=0):
    """Assert that the reference and the kernel agree on a small random case.

    Three sequences of lengths 7, 7 and 4 run through the kernel in one
    minibatch, in both target modes and with one and two kernel threads;
    their summed references must give the same loss and gradients.

    Parameters
    ----------
    n_hidden, n_inputs, n_outputs : int
        Sizes of the random case.
    seed : int
        Seed of the random case.

    Raises
    ------
    AssertionError
        If the loss or a gradient differs beyond rounding.
    """
    rng = np.random.default_rng(seed)
    params = init_params(n_hidden, n_inputs, n_outputs, rng)
    lengths = [7, 7, 4]
    n_seq, n_steps = len(lengths), max(lengths)
    X = rng.standard_normal((n_seq, n_steps, n_inputs))
    Y = rng.standard_normal((n_seq, n_steps, n_outputs))
    for every_step in (True, False):
        Y_used = Y if every_step else Y[:, :1]
        ref_loss, ref_grads = _reference_sum(X, Y, params, 0.3, every_step, lengths)
        for n_threads in (1, 2):
            call = KernelCall(X, Y_used, params, 0.3, every_step, lengths, n_threads)
            with call.blas_limits():
                call()
            loss, grads = call.result()
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
            for name, grad in ref_grads.items():
                np.testing.assert_allclose(
                    grads[name], grad, rtol=1e-9, atol=1e-12, err_msg=name
                )


def _reference_sum(X, Y, params, weight, every_step, lengths):
    """Loss and gradients of :func:`rtrl_sequence` summed over sequences."""
    total_loss, total = 0.0, None
    for b, length in enumerate(lengths):
        Y_b = Y[b, :length] if every_step else Y[b, :1]
        loss, grads = rtrl_sequence(X[b, :length], Y_b, params, weight, every_step)
        total_loss += loss
        total = grads if total is None else {k: total[k] + grads[k] for k in grads}
    return total_loss, total


if __name__ == "__main__":
    check_against_kernel()
    print("numpy reference and skrtrl kernel agree")
