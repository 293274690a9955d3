"""Optimizers over one flat parameter vector.

The estimators keep every parameter as a view into a single flat array, so an
optimizer sees one vector and its state is a couple of arrays of the same
size: cheap to copy (for atomic updates) and trivial to pickle. With
``update="step"`` the compiled kernel applies the same arithmetic to the same
state arrays after every time step (``kernel_state``).
"""

import numpy as np

# Codes of the online kernel (skrtrl/_kernels/_common.pxd).
SOLVER_SGD = 0
SOLVER_ADAM = 1


def clip_gradient(grad, clip_norm):
    """Scale ``grad`` in place so that its L2 norm is at most ``clip_norm``.

    Returns the norm before clipping. ``clip_norm=None`` leaves it alone.
    """
    largest = float(np.max(np.abs(grad))) if grad.size else 0.0
    if not 0.0 < largest < np.inf:
        return largest
    # Scaled so that the sum of squares cannot overflow.
    scaled = grad / largest
    norm = largest * float(np.sqrt(np.dot(scaled, scaled)))
    if clip_norm is not None and norm > clip_norm:
        grad *= clip_norm / norm
    return norm


class _FlatState:
    """An optimizer's state: numbers and flat arrays, copied cheaply.

    Training copies the optimizer before every kernel call, to restore it
    if the parameters diverge; a generic deep copy of these few attributes
    costs more than a one-row kernel call.
    """

    #: The names of the state arrays; the other attributes are numbers.
    _arrays = ()

    def snapshot(self):
        """An independent copy (the arrays copied, the numbers shared)."""
        twin = object.__new__(type(self))
        state = twin.__dict__
        state.update(self.__dict__)
        for name in self._arrays:
            state[name] = state[name].copy()
        return twin

    def __deepcopy__(self, memo):
        return self.snapshot()


class SGDOptimizer(_FlatState):
    """Stochastic gradient descent with (Nesterov) momentum.

    Parameters
    ----------
    n_params : int
        Size of the flat parameter vector.
    learning_rate : float
        Step size.
    momentum : float
        Momentum in [0, 1].
    nesterov : bool
        Whether to use Nesterov's momentum.
    dtype : dtype
        Dtype of the state, the same as the parameters'.
    """

    _arrays = ("velocity",)

    def __init__(
        self, n_params, learning_rate, momentum=0.9, nesterov=True, dtype=np.float64
    ):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity = np.zeros(n_params, dtype=dtype)
        self.t = 0

    def kernel_state(self):
        """(solver code, settings, state arrays) for the online kernel."""
        settings = (self.learning_rate, 0.9, 0.999, 1e-8, self.momentum, self.nesterov)
        return SOLVER_SGD, settings, self.velocity, self.velocity

    def step(self, params, grad):
        """Update ``params`` in place with the gradient ``grad``."""
        self.t += 1
        v = self.velocity
        v *= self.momentum
        v -= self.learning_rate * grad
        if self.nesterov:
            params += self.momentum * v - self.learning_rate * grad
        else:
            params += v


class AdamOptimizer(_FlatState):
    """Adam (Kingma & Ba, 2015) with bias-corrected moments.

    Parameters
    ----------
    n_params : int
        Size of the flat parameter vector.
    learning_rate : float
        Step size.
    beta_1, beta_2 : float
        Decay rates of the first and second moment estimates.
    epsilon : float
        Added to the denominator for numerical stability.
    dtype : dtype
        Dtype of the state, the same as the parameters'.
    """

    _arrays = ("m", "v")

    def __init__(
        self,
        n_params,
        learning_rate,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        dtype=np.float64,
    ):
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.m = np.zeros(n_params, dtype=dtype)
        self.v = np.zeros(n_params, dtype=dtype)
        self.t = 0

    def kernel_state(self):
        """(solver code, settings, state arrays) for the online kernel."""
        settings = (
            self.learning_rate,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            0.0,
            False,
        )
        return SOLVER_ADAM, settings, self.m, self.v

    def step(self, params, grad):
        """Update ``params`` in place with the gradient ``grad``."""
        self.t += 1
        self.m *= self.beta_1
        self.m += (1 - self.beta_1) * grad
        self.v *= self.beta_2
        self.v += (1 - self.beta_2) * grad * grad
        lr = (
            self.learning_rate
            * np.sqrt(1 - self.beta_2**self.t)
            / (1 - self.beta_1**self.t)
        )
        params -= lr * self.m / (np.sqrt(self.v) + self.epsilon)


class OnlineUpdate:
    """What the online kernels apply after every step: L2, clipping, optimizer.

    Parameters
    ----------
    optimizer : SGDOptimizer or AdamOptimizer
        Its state arrays are updated in place by the kernels, and its update
        count ``t`` is set from what they return (``count``).
    penalty : ndarray
        L2 coefficient of every parameter (``alpha`` times the cell's mask).
    clip_norm : float or None
        Gradient clipping norm of every step.
    """

    #: Whether the kernels compute gradients and update at all.
    learn = True

    def __init__(self, optimizer, penalty, clip_norm):
        self.optimizer = optimizer
        self.penalty = penalty
        self.clip_norm = clip_norm

    def kernel_args(self):
        """The arguments of the online kernels, in their order.

        Solver code, learning rate, beta_1, beta_2, epsilon, momentum,
        nesterov, the two state arrays, the update count, the L2 penalty of
        every parameter and the clipping norm (-1: none).
        """
        solver, settings, state_a, state_b = self.optimizer.kernel_state()
        clip = -1.0 if self.clip_norm is None else float(self.clip_norm)
        return (solver, *settings, state_a, state_b, self.optimizer.t,
                self.penalty, clip)  # fmt: skip

    def count(self, t):
        """Take the update count a kernel returns."""
        self.optimizer.t = t


class NoLearning(OnlineUpdate):
    """The online kernels' run without learning (``learn=False``).

    The state, the influence and whatever the gradient method carries move
    exactly as in a learning call; no gradient is computed and nothing is
    updated. The optimizer here only fills the kernels' arguments.
    """

    learn = False

    def __init__(self, n_params, dtype):
        super().__init__(
            SGDOptimizer(n_params, 0.0, 0.0, False, dtype=dtype),
            np.zeros(n_params, dtype=dtype),
            None,
        )

    def count(self, t):
        pass
