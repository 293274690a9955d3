"""From the estimators' hyper-parameters to what trains: cell, optimizer, modes.

The estimators hold scikit-learn hyper-parameters; the model needs a cell
object (wrapped by a gradient method or output feedback as asked), an
optimizer, and the assurance that the combination can train. This module is
that translation, so that ``BaseRTRL`` keeps only the scikit-learn surface.
Which gradient methods and training modes a cell supports is the cell's to
say (``skrtrl._cells.CELLS``); the rules here are those of the modes.
"""

from sklearn.base import is_classifier

from ._cells import CELLS, readout_width
from ._feedback import FeedbackCell
from ._methods import make_cell
from ._optim import AdamOptimizer, SGDOptimizer
from ._stack import (
    LOCAL_POOLING,
    StackCell,
    check_stack_settings,
    is_stack,
    layer_cells,
    layer_sizes,
)

#: The settings that select each training mode, for error messages.
MODE_SETTINGS = {
    "minibatch": "gradients over minibatches of sequences",
    "step": "update='step'",
    "stream": "stateful=True",
    "feedback": "output_feedback=True with teacher_forcing=True",
    "free_running": "output_feedback=True with teacher_forcing=False",
}


#: The step sizes of ``learning_rate_init="auto"``, by ``update_mode``:
#: an update per time step takes smaller steps than one per minibatch of
#: sequences (chosen on the development suite by
#: ``benchmarks/choose_defaults.py``).
AUTO_LEARNING_RATES = {"batch": 1e-2, "step": 1e-3}


def learning_rate(params):
    """The step size ``params`` train with (``"auto"`` resolved)."""
    if params.learning_rate_init == "auto":
        return AUTO_LEARNING_RATES[update_mode(params)]
    return params.learning_rate_init


def update_mode(params):
    """'step' or 'batch': when the weights change."""
    if params.update == "auto":
        return "step" if params.stateful else "batch"
    return params.update


def every_step(params):
    """Whether training has a target at every step."""
    return params.output == "sequence" or params.stateful


def training_modes(params):
    """The modes of ``skrtrl._cells.MODES`` that ``params`` train in."""
    if params.stateful:
        modes = ["stream"]
    elif update_mode(params) == "step":
        modes = ["step"]
    else:
        modes = ["minibatch"]
    if params.output_feedback:
        modes.append("feedback" if params.teacher_forcing else "free_running")
    return modes


def cell_class(params):
    """The class of the cell ``params`` train: a stack's, or the registry's."""
    return StackCell if is_stack(params) else CELLS[params.cell]


def check_training_settings(params):
    """ValueError, naming what is supported, for settings that cannot train.

    ``params`` is an estimator (its hyper-parameters are read).
    """
    if is_stack(params):
        check_stack_settings(params, training_modes(params))
    cell = cell_class(params)
    for mode in training_modes(params):
        if mode in cell.modes(params.gradient):
            continue
        supported = [g for g in cell.gradients if mode in cell.modes(g)]
        message = (
            f"cell={params.cell!r} with gradient={params.gradient!r} does not "
            f"support training mode {mode!r} ({MODE_SETTINGS[mode]}); the "
            f"gradient methods that support it are {supported}."
        )
        if not supported:
            cells = [name for name, c in CELLS.items() if any(
                mode in c.modes(g) for g in c.gradients)]  # fmt: skip
            message = (
                f"cell={params.cell!r} does not support training mode {mode!r} "
                f"({MODE_SETTINGS[mode]}) with any gradient method; the cells "
                f"that do are {cells}."
            )
        elif mode == "free_running":
            message = (
                "teacher_forcing=False needs gradient='rtrl': training on the "
                "model's own fed-back outputs follows them through the "
                "feedback path. Use teacher_forcing=True (the previous targets "
                "are fed back) with other methods. " + message
            )
        raise ValueError(message)
    if params.output_feedback and not every_step(params):
        raise ValueError(
            "output_feedback=True feeds the previous output back into the "
            "network and trains on a target at every step; it needs "
            "output='sequence' or stateful=True (got output='last')."
        )
    if params.stateful and params.update == "batch":
        raise ValueError(
            "stateful=True learns from a stream as it arrives and needs "
            "update='step' (or 'auto'); update='batch' would make the "
            "result depend on how the stream is cut into chunks."
        )
    if params.stateful and params.gradient == "bptt" and params.truncation is None:
        raise ValueError(
            "gradient='bptt' on a stream (stateful=True) needs an integer "
            "truncation: without one, backpropagation would reach back to "
            "the start of the stream and its memory would grow with it. "
            "Set truncation=k to backpropagate each loss through its last "
            "k steps."
        )
    _check_pooling(params)
    if params.stateful and params.early_stopping:
        raise ValueError(
            "early_stopping needs held-out sequences; a stream "
            "(stateful=True) is one sequence. Use early_stopping=False."
        )


def _check_pooling(params):
    """ValueError for settings where a pooled readout has no meaning."""
    if params.pooling in ("last", "auto"):
        return
    where = pooling_refusal(params)
    if where is not None:
        what = {
            "mean": "mean",
            "max": "per-unit maximum",
            "mean+last": "mean and the last",
        }[params.pooling]
        raise ValueError(
            f"pooling={params.pooling!r} reads one target per sequence from "
            f"the {what} of its hidden states; {where}."
        )


def pooling_refusal(params):
    """Why a pooled readout has no meaning for ``params``, or None."""
    if params.stateful:
        return "a stream (stateful=True) has no sequence to pool over"
    if params.output == "sequence":
        return "output='sequence' has a target at every step"
    if params.output_feedback:
        return "output feedback feeds back per-step outputs"
    if update_mode(params) == "step":
        return (
            "update='step' would update once per sequence, at its end, which "
            "update='batch' with batch_size=1 does"
        )
    if params.gradient == "uoro":
        return (
            "UORO keeps a rank-one estimate of the influence, and the running "
            "sum of those estimates is not of rank one (it would take the "
            "memory UORO avoids); use gradient='rtrl', 'snap1' or 'bptt'"
        )
    if params.gradient == "bptt" and params.truncation is not None:
        return (
            "truncated BPTT would not reach the early steps the pooled "
            "readout reads; use truncation=None"
        )
    if params.gradient == "local":
        return LOCAL_POOLING
    if params.pooling == "mean+last" and is_stack(params):
        return (
            "a stack reads 'last', 'mean' or 'max' of its top layer (the "
            "mean beside the last state is for one layer)"
        )
    return None


def resolved_pooling(params):
    """The readout ``params`` train: ``"auto"`` made a pooling or ``"last"``.

    ``"auto"`` reads the cell's pooling (``Cell.auto_pooling``: each unit's
    maximum over the sequence, the mean of the LRU's output map, the gated
    LRU's mean beside its last y; a stack's top layer: the maximum) for a
    classifier wherever a pooled readout applies (one target per sequence,
    whole sequences, exact, SnAp-1 or BPTT gradients), and the last state
    elsewhere: streams, per-step
    targets, feedback and the layer-local approximation keep working at the
    default, and a regressor's target (the next value of a series, a sum)
    depends on when things happened, which a pooling over time forgets.
    """
    if params.pooling != "auto":
        return params.pooling
    if not is_classifier(params) or pooling_refusal(params) is not None:
        return "last"
    return cell_class(params).auto_pooling


def build_cell(params, n_inputs, n_outputs, random_state=None):
    """The cell ``params`` train, for data of these sizes.

    ``random_state`` (the estimator's generator) is the source of UORO's
    random signs.
    """
    settings = dict(
        activation=params.activation,
        gradient=params.gradient,
        truncation=params.truncation,
        random_state=random_state,
    )
    if is_stack(params):
        return StackCell(
            params.cell,
            layer_sizes(params.n_hidden),
            n_inputs,
            n_outputs,
            gradient=params.gradient,
            activation=params.activation,
            pooling=resolved_pooling(params),
        )
    n_hidden = layer_sizes(params.n_hidden)[0]
    if params.output_feedback:
        return FeedbackCell(
            params.cell,
            n_hidden,
            n_inputs,
            n_outputs,
            teacher_forcing=params.teacher_forcing,
            **settings,
        )
    return make_cell(
        params.cell,
        n_hidden,
        n_inputs,
        n_outputs,
        pooling=resolved_pooling(params),
        **settings,
    )


def cell_follows(cell, params):
    """Whether ``cell`` trains the way ``params`` now ask.

    Raises ValueError when ``params`` ask for another parameter layout (a
    change of ``cell``, ``n_hidden`` or ``output_feedback`` after fitting,
    or of ``pooling`` to or from ``"mean+last"``).
    """
    fitted = {
        "cell": cell.name,
        "n_hidden": getattr(cell, "n_hidden", cell.n),
        "output_feedback": isinstance(cell, FeedbackCell),
    }
    now = {name: getattr(params, name) for name in fitted}
    # n_hidden=8 and n_hidden=(8,) ask for the same layer.
    sizes = layer_sizes(params.n_hidden)
    now["n_hidden"] = sizes[0] if len(sizes) == 1 else sizes
    changed = [name for name in fitted if fitted[name] != now[name]]
    # cell="gru" and cell=("gru", "gru") ask for the same two layers.
    if "cell" in changed and "n_hidden" not in changed:
        fitted_cells = getattr(cell, "cells", (cell.name,) * len(sizes))
        if fitted_cells == layer_cells(params.cell, params.n_hidden):
            changed.remove("cell")
    # "mean+last" reads 2 n_hidden numbers, the other poolings n_hidden.
    fitted["pooling"] = getattr(cell, "pooling", "last")
    now["pooling"] = params.pooling
    if readout_width(fitted["pooling"], cell.n) != readout_width(
        resolved_pooling(params), cell.n
    ):
        changed.append("pooling")
    if changed:
        was = " and ".join(f"{name}={fitted[name]!r}" for name in changed)
        new = " and ".join(f"{name}={now[name]!r}" for name in changed)
        raise ValueError(
            f"The model was fitted with {was}, but now has {new}: the "
            "parameters differ. Call fit (without warm_start) to train a "
            "new model."
        )
    truncation = params.truncation if params.gradient == "bptt" else None
    return (
        cell.gradient == params.gradient
        # cell=("gru",) is a stack of one layer (names with "_l0").
        and isinstance(cell, StackCell) == is_stack(params)
        and getattr(cell, "truncation", None) == truncation
        and cell.activation == params.activation
        and getattr(cell, "teacher_forcing", True) == bool(params.teacher_forcing)
        and getattr(cell, "pooling", "last") == resolved_pooling(params)
    )


def build_optimizer(params, n_params, dtype):
    """The optimizer ``params`` ask for, over ``n_params`` parameters."""
    if params.solver == "adam":
        return AdamOptimizer(
            n_params,
            learning_rate(params),
            params.beta_1,
            params.beta_2,
            params.epsilon,
            dtype=dtype,
        )
    return SGDOptimizer(
        n_params,
        learning_rate(params),
        params.momentum,
        params.nesterovs_momentum,
        dtype=dtype,
    )
