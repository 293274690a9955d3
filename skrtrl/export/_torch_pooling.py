"""The pooled readout as a torch module (imported only by ``to_torch``)."""

import torch


def pool_hidden(hidden, pooling, lengths=None):
    """The pooled hidden states of the hidden states of every step.

    ``hidden`` is a recurrent layer's output, batch first: (N, T, n), or
    (T, n) for one sequence. ``pooling`` ``"mean"`` averages over each
    sequence's own steps (the sum over its valid steps divided by its
    length), ``"max"`` takes each unit's maximum over them. Without
    ``lengths`` (N,) every sequence has T steps. ``torch.where`` keeps the
    padded steps out, whatever they hold.
    """
    if lengths is None:
        return hidden.mean(dim=-2) if pooling == "mean" else hidden.amax(dim=-2)
    lengths = torch.as_tensor(lengths, device=hidden.device)
    steps = torch.arange(hidden.shape[-2], device=hidden.device)
    valid = (steps[None, :] < lengths[:, None])[..., None]
    if pooling == "max":
        return torch.where(valid, hidden, float("-inf")).amax(dim=-2)
    total = torch.where(valid, hidden, 0.0).sum(dim=-2)
    return total / lengths[:, None].to(hidden.dtype)


class PooledReadout(torch.nn.Module):
    """The linear readout of the pooled hidden states.

    ``forward(hidden, lengths=None)`` takes the recurrent layer's output for
    every step, (N, T, n_hidden) batch first or (T, n_hidden), pools it over
    time (``pooling`` ``"mean"`` or ``"max"``, over each sequence's first
    ``lengths[i]`` steps when ``lengths`` is given) and applies ``linear``
    (a ``torch.nn.Linear``), giving (N, n_outputs) or (n_outputs,).
    """

    def __init__(self, pooling, n_hidden, n_outputs, *, dtype=None):
        super().__init__()
        self.pooling = pooling
        self.linear = torch.nn.Linear(n_hidden, n_outputs, dtype=dtype)

    def forward(self, hidden, lengths=None):
        return self.linear(pool_hidden(hidden, self.pooling, lengths))

    def extra_repr(self):
        return f"pooling={self.pooling!r}"
