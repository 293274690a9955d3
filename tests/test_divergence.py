"""The divergence rule (``skrtrl._divergence``), case by case.

The estimators' behaviour on divergence (one warning, parameters restored,
for every cell and mode) is tested in ``test_robustness.py``; here the rule
itself: what diverges, what does not, and that a check that failed leaves
the record as it was.
"""

import numpy as np
import pytest

from skrtrl._divergence import (
    GROWTH,
    STREAM_GROWTH,
    STREAM_MIN_STEPS,
    Diverged,
    LossWatch,
)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_loss_diverges(bad):
    watch = LossWatch()
    with pytest.raises(Diverged):
        watch.check([1.0, bad])
    with pytest.raises(Diverged):
        LossWatch().check_stream([1.0, bad], [1.0, 1.0], [1, 1])


def test_minibatches_against_the_running_epoch_before_one_ends():
    for factor, diverges in ((0.99, False), (1.01, True)):
        watch = LossWatch()
        watch.check([2.0, 1.0, 3.0])  # the median of the epoch so far: 2
        if diverges:
            with pytest.raises(Diverged):
                watch.check(factor * GROWTH * 2.0)
        else:
            watch.check(factor * GROWTH * 2.0)


def test_minibatches_against_the_best_epoch():
    watch = LossWatch()
    watch.check([5.0, 4.0])
    watch.end_epoch(4.5)
    watch.check([3.0])
    watch.end_epoch(3.0)  # the best
    watch.end_epoch(7.0)  # a worse epoch does not raise the reference
    watch.check(0.99 * GROWTH * 3.0)
    with pytest.raises(Diverged):
        watch.check(1.01 * GROWTH * 3.0)


def test_a_loss_below_the_first_one_never_diverges():
    # A model that fits almost exactly: the best epoch at 1e-12, then a
    # minibatch at 1e-6 (a million times more, still far below the start).
    watch = LossWatch()
    watch.check([1.0])
    watch.end_epoch(1e-12)
    watch.check(1e-6)
    watch.check(0.9)
    with pytest.raises(Diverged):
        watch.check(1.1)  # above the first loss and 1e4 times the best


def test_a_zero_reference_does_not_flag_every_loss():
    watch = LossWatch()
    watch.check([0.0, 0.0])
    watch.check(5.0)  # nothing to compare with: only non-finite diverges


def test_streams_need_enough_steps_before_their_mean_is_a_reference():
    watch = LossWatch()
    steps = STREAM_MIN_STEPS - 1
    # Weighted losses of segments: total loss, target weight, steps.
    watch.check_stream([0.01 * steps], [steps], [steps])
    watch.check_stream([1e9], [1.0], [1])  # too early to compare
    watch = LossWatch()
    enough = STREAM_MIN_STEPS
    watch.check_stream([0.01 * enough], [enough], [enough])
    watch.check_stream([0.99 * STREAM_GROWTH * 0.01], [1.0], [1])
    with pytest.raises(Diverged):
        watch.check_stream([1.01 * STREAM_GROWTH * 0.01 * 3], [3.0], [1])


def test_a_slowly_growing_stream_does_not_raise_its_own_reference():
    # Losses growing tenfold per call: the running mean follows them, its
    # lowest value does not, so the growth is caught within seven calls.
    watch = LossWatch()
    watch.check_stream([0.1 * 200], [200.0], [200])
    with pytest.raises(Diverged):
        for k in range(1, 8):
            watch.check_stream([0.1 * 10**k], [1.0], [1])
    assert k == 7


def test_a_check_that_fails_changes_nothing():
    watch = LossWatch()
    watch.check_stream([0.5 * 300], [300.0], [300])
    record = dict(watch.__dict__)
    with pytest.raises(Diverged):
        watch.check_stream([0.5, 1e12], [1.0, 1.0], [1, 1])
    assert watch.__dict__ == record


def test_zero_weights_count_steps_but_no_loss():
    watch = LossWatch()
    watch.check_stream([0.0, 0.3 * 50], [0.0, 50.0], [500, 50])
    assert watch.stream_steps == 550
    assert watch.stream_reference == pytest.approx(0.3)


@pytest.mark.parametrize("spike_at", [5, 150, None])
def test_the_row_check_of_a_stream_is_check_stream_on_one_row(spike_at):
    # check_stream_row is check_stream specialised to one row of weight 1:
    # the same verdicts and the same running state.
    losses = np.random.RandomState(0).uniform(0.1, 2.0, size=300)
    if spike_at is not None:
        losses[spike_at] = 1e9
    general, row = LossWatch(), LossWatch()
    for loss in losses.tolist():
        verdicts = []
        for check, args in (
            (general.check_stream, ((loss,), (1.0,), (1,))),
            (row.check_stream_row, (loss,)),
        ):
            try:
                check(*args)
                verdicts.append(True)
            except Diverged:
                verdicts.append(False)
        assert verdicts[0] == verdicts[1]
        assert vars(general) == vars(row)
    assert (general.stream_steps < 300) == (spike_at == 150)
