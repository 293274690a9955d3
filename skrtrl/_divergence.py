"""When training has diverged: the rule of each training mode.

Training diverges when a loss, a gradient or a parameter becomes NaN or
infinite, or when the training loss grows by orders of magnitude over what
it was. The second half matters with bounded activations, where a learning
rate far too large drives the weights to 1e26 and the loss to 1e43 without
any value ever becoming NaN. The losses checked are means per unit of
target weight, and the rule depends on the training mode:

* **Minibatches of sequences** (``update="batch"``) and **updates after
  every step of independent sequences** (``update="step"``): each
  minibatch's loss (with ``update="step"``, each sequence's mean loss per
  step, read after the kernel call that trained on it) is compared with the
  best epoch loss so far or, before an epoch has ended, with the median of
  the losses of the running epoch. It diverges when it exceeds
  ``GROWTH`` times that reference and also the first loss the run saw: a
  model that fits its data almost exactly (a best loss of 1e-12, say) may
  see a minibatch at 1e-7 without anything having gone wrong.
* **Streams** (``stateful=True``): a kernel call runs over segments of at
  most ``STREAM_SEGMENT`` rows. Each segment's mean loss per step is
  compared with the lowest running mean loss per step over the stream,
  taken once the stream has ``STREAM_MIN_STEPS`` steps; it diverges when it
  exceeds ``STREAM_GROWTH`` times that. Calls of a single row have noisy
  losses (one row can be far off without anything being wrong), hence the
  larger factor and the minimum number of steps; the lowest running mean
  keeps an explosion that grows over many calls from raising its own
  reference.

"First", "best" and the stream's running figures cover one training run:
they start over with every ``fit`` and carry on across ``partial_fit``
calls. What happens on divergence (stop, restore the parameters and
optimizer state of before, warn) is the estimator's (``skrtrl._base``).
"""

import numpy as np

#: A loss this many times its reference has diverged (minibatches, step).
GROWTH = 1e4
#: The same for streams, whose losses of one row vary more.
STREAM_GROWTH = 1e6
#: Steps a stream needs before its running mean is a reference.
STREAM_MIN_STEPS = 100
#: Rows of a stream checked together (a kernel call runs segment by segment).
STREAM_SEGMENT = 256


class Diverged(Exception):
    """The loss, the gradient or the parameters diverged."""


class LossWatch:
    """The divergence rule of one training run (see the module docstring).

    Checks raise :class:`Diverged`. What they learn is only kept once an
    epoch ends (``end_epoch``) or a stream call passes (``check_stream``),
    so that a call that diverged leaves the watch as it was.
    """

    def __init__(self):
        self.first = None
        self.best = None
        self._epoch = []
        self.stream_loss = 0.0  # weighted loss of the stream so far
        self.stream_weight = 0.0
        self.stream_steps = 0
        self.stream_reference = np.inf

    def check(self, losses):
        """Check losses of minibatches or sequences, in training order."""
        for loss in np.atleast_1d(np.asarray(losses, dtype=np.float64)):
            if not np.isfinite(loss):
                raise Diverged
            if self.first is None:
                self.first = float(loss)
            reference = self.best
            if reference is None and self._epoch:
                reference = float(np.median(self._epoch))
            if (
                reference is not None
                and reference > 0
                and loss > GROWTH * reference
                and loss > self.first
            ):
                raise Diverged
            self._epoch.append(float(loss))

    def end_epoch(self, loss):
        """An epoch ended with this loss: it may become the reference."""
        self._epoch = []
        if self.best is None or loss < self.best:
            self.best = float(loss)

    def abandon_epoch(self):
        """The running epoch diverged (or stopped): forget its losses."""
        self._epoch = []

    def check_stream(self, losses, weights, steps):
        """Check the segments of one stream call: their weighted losses,
        target weights and numbers of steps, in stream order."""
        total, weight = self.stream_loss, self.stream_weight
        count, reference = self.stream_steps, self.stream_reference
        for loss, w, n in zip(losses, weights, steps):
            if not np.isfinite(loss):
                raise Diverged
            if w <= 0:
                count += int(n)
                continue
            if (
                count >= STREAM_MIN_STEPS
                and reference > 0
                and loss / w > STREAM_GROWTH * reference
            ):
                raise Diverged
            total += float(loss)
            weight += float(w)
            count += int(n)
            if count >= STREAM_MIN_STEPS:
                reference = min(reference, total / weight)
        self.stream_loss, self.stream_weight = total, weight
        self.stream_steps, self.stream_reference = count, reference

    def check_stream_row(self, loss):
        """``check_stream`` of one row of weight 1 and finite ``loss``.

        The same rule and the same arithmetic, without the loop and the
        tuples: the one-row path calls it once per sample.
        """
        reference = self.stream_reference
        if (
            self.stream_steps >= STREAM_MIN_STEPS
            and reference > 0
            and loss > STREAM_GROWTH * reference
        ):
            raise Diverged
        self.stream_loss += loss
        self.stream_weight += 1.0
        self.stream_steps += 1
        if self.stream_steps >= STREAM_MIN_STEPS:
            self.stream_reference = min(
                reference, self.stream_loss / self.stream_weight
            )
