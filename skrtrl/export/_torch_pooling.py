"""The pooled readout as a torch module (imported only by ``to_torch``)."""

import torch

from .._cells import readout_width


def pool_hidden(hidden, pooling, lengths=None):
    """The pooled hidden states of the hidden states of every step.

    ``hidden`` is a recurrent layer's output, batch first: (N, T, n), or
    (T, n) for one sequence. ``pooling`` ``"mean"`` averages over each
    sequence's own steps (the sum over its valid steps divided by its
    length), ``"max"`` takes each unit's maximum over them, ``"mean+last"``
    puts the hidden state of each sequence's last valid step (step
    ``lengths[i] - 1``), divided by the length, after the mean, giving 2n
    numbers. Without ``lengths`` (N,) every sequence has T steps.
    ``torch.where`` keeps the padded steps out, whatever they hold.
    """
    if pooling == "mean+last":
        mean = pool_hidden(hidden, "mean", lengths)
        last = _last_valid(hidden, lengths) / _step_counts(hidden, lengths)
        return torch.cat([mean, last], dim=-1)
    if lengths is None:
        return hidden.mean(dim=-2) if pooling == "mean" else hidden.amax(dim=-2)
    lengths = torch.as_tensor(lengths, device=hidden.device)
    steps = torch.arange(hidden.shape[-2], device=hidden.device)
    valid = (steps[None, :] < lengths[:, None])[..., None]
    if pooling == "max":
        return torch.where(valid, hidden, float("-inf")).amax(dim=-2)
    total = torch.where(valid, hidden, 0.0).sum(dim=-2)
    return total / _step_counts(hidden, lengths)


def _step_counts(hidden, lengths):
    """How many steps each sequence has: ``lengths`` as (N, 1) in the
    dtype of ``hidden``, or T without them."""
    if lengths is None:
        return hidden.shape[-2]
    lengths = torch.as_tensor(lengths, device=hidden.device)
    return lengths[:, None].to(hidden.dtype)


def _last_valid(hidden, lengths):
    """``hidden`` at each sequence's last valid step: (N, n), or (n,)."""
    if lengths is None:
        return hidden[..., -1, :]
    last = torch.as_tensor(lengths, device=hidden.device) - 1
    if hidden.dim() == 2:
        # One sequence read at lengths, as the mean reads it: (N, n).
        return hidden[last]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class PooledReadout(torch.nn.Module):
    """The linear readout of the pooled hidden states.

    ``forward(hidden, lengths=None)`` takes the recurrent layer's output for
    every step, (N, T, n_hidden) batch first or (T, n_hidden), pools it over
    time (``pooling`` ``"mean"``, ``"max"`` or ``"mean+last"``, over each
    sequence's first ``lengths[i]`` steps when ``lengths`` is given) and
    applies ``linear`` (a ``torch.nn.Linear`` of ``n_hidden`` inputs, or
    ``2 n_hidden`` for ``"mean+last"``), giving (N, n_outputs) or
    (n_outputs,).
    """

    def __init__(self, pooling, n_hidden, n_outputs, *, dtype=None):
        super().__init__()
        self.pooling = pooling
        self.linear = torch.nn.Linear(
            readout_width(pooling, n_hidden), n_outputs, dtype=dtype
        )

    def forward(self, hidden, lengths=None):
        return self.linear(pool_hidden(hidden, self.pooling, lengths))

    def extra_repr(self):
        return f"pooling={self.pooling!r}"
