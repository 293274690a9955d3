"""What an exporter needs to know about a fitted estimator, in one place.

The exporters read the fitted model only through :func:`describe`, which
takes the parameters from ``params_`` (torch's names and layouts) and the
settings that decide the maths: the cell, its activation, the output link,
whether the readout runs after every step, what it reads of a whole
sequence (its last hidden state or a pooling of them all) and whether the
previous output is fed back. Everything is copied, so an export never holds
views into a live estimator.
"""

from dataclasses import dataclass, replace

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from .._cells import GLRUCell, LRUCell
from ..inspection._cell_steps import CELL_STEPS

#: Gate rows per hidden unit in ``weight_ih`` (torch's layout).
GATES = {"elman": 1, "diagonal": 1, "gru": 3, "lstm": 4, "egru": 3, "elstm": 4}
#: Cells whose ``weight_hh`` is a vector: one recurrent weight per row.
ELEMENTWISE_CELLS = frozenset({"diagonal", "egru", "elstm"})
#: Cells with a memory cell c besides h.
CELLS_WITH_MEMORY = frozenset({"lstm", "elstm"})
#: The linear recurrent units' ``params_`` besides the readout, per cell, as
#: each cell's layout names them (the names do not depend on the sizes).
#: Their input matrices (B, D and the gated LRU's ``weight_gate``) take the
#: fed-back output as extra columns (no ``weight_fb``); their state is the
#: complex h as [Re h, Im h] and their readout reads the output map y.
LRU_CELL_PARAMS = {
    cell.name: frozenset(cell(1, 1, 1).layout.columns_of)
    for cell in (LRUCell, GLRUCell)
}
#: The readout's ``params_``, every cell's.
READOUT_PARAMS = frozenset({"weight_out", "bias_out"})
#: Every exported cell.
EXPORTED_CELLS = frozenset(GATES) | frozenset(LRU_CELL_PARAMS)


@dataclass(frozen=True)
class RecurrentModel:
    """A fitted recurrent net, as plain arrays and settings.

    Attributes
    ----------
    cell : {"elman", "diagonal", "gru", "lstm", "egru", "elstm", "lru", "glru"}
    activation : str
        Hidden activation of the Elman and diagonal cells, the output map's
        of the LRUs (``"lru"`` and ``"glru"``).
    params : dict of str to ndarray
        Copies of ``params_`` (``weight_fb`` only with output feedback,
        except for the LRUs, whose ``B_re``, ``B_im``, ``D`` and
        ``weight_gate`` then end with the fed-back columns).
    link : {"identity", "logistic", "softmax"}
        What turns the readout into the prediction and the fed-back value.
    classes : ndarray or None
        The classifier's ``classes_``.
    per_step : bool
        Whether the readout is read after every step (``output="sequence"``
        or a stream).
    pooling : {"last", "mean", "max", "mean+last"}
        What the readout of one target per sequence reads: the last hidden
        state, the mean of the hidden states over the sequence's own steps,
        each unit's maximum over them, or the mean followed by the last
        hidden state (2 n numbers; ``weight_out`` is then o x 2n). For the
        LRUs, of their output map y instead of h. Always ``"last"`` when
        ``per_step`` is true.
    stateful : bool
        Stream mode: rows are consecutive steps of one stream.
    feedback : bool
        Whether the previous output is an input of the cell.
    input_kind : {"2d", "3d", "list", "stream"}
        The form of X the estimator was fitted on.
    n_timesteps : int or None
        The fixed number of steps of a model fitted on a 2D X.
    state : dict of str to ndarray
        The state the next step starts from: ``"h"`` (``n_state``,: h, or
        the LRUs' [Re h, Im h]), ``"c"`` (n,, LSTM and element-wise LSTM
        only) and ``"feedback"`` (n_outputs,, with output feedback only);
        with a pooled readout also ``"pool"`` (n,,
        zeros for ``"mean"`` and ``"mean+last"``, -inf for ``"max"``) and,
        for the two means, ``"steps"`` (1,, zero): the running sum or maximum
        of h (the LRUs' y) and the number of steps, for the one-step model
        (the last part of ``"mean+last"`` is the current step's, no state).
        Zeros, except for a stateful estimator, whose current stream state
        it is.
    """

    cell: str
    activation: str
    params: dict
    link: str
    classes: np.ndarray | None
    per_step: bool
    pooling: str
    stateful: bool
    feedback: bool
    input_kind: str
    n_timesteps: int | None
    state: dict

    @property
    def is_lru(self):
        """Whether the cell is an LRU: complex state, output map y."""
        return self.cell in LRU_CELL_PARAMS

    @property
    def n_hidden(self):
        # Not weight_out's width: "mean+last" reads 2n numbers.
        return CELL_STEPS[self.cell].hidden_size(self.params)

    @property
    def n_inputs(self):
        if self.is_lru:
            fed_back = self.n_outputs if self.feedback else 0
            return self.params["B_re"].shape[1] - fed_back
        return self.params["weight_ih"].shape[1]

    @property
    def n_state(self):
        """Size of the state ``"h"``: 2n for the LRUs' complex h, else n."""
        return 2 * self.n_hidden if self.is_lru else self.n_hidden

    @property
    def n_outputs(self):
        return self.params["weight_out"].shape[0]

    @property
    def dtype(self):
        return self.params["weight_out"].dtype


def describe(estimator):
    """The :class:`RecurrentModel` of a fitted RTRLRegressor or RTRLClassifier.

    Raises a ValueError when the estimator's settings no longer match its
    fitted parameters (``set_params`` after ``fit``), as ``predict`` would.
    """
    from .._base import BaseRTRL

    if not isinstance(estimator, BaseRTRL):
        raise TypeError(
            "Expected a fitted RTRLRegressor or RTRLClassifier; got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    params = {name: np.array(value) for name, value in estimator.params_.items()}
    _check_layout(estimator, params)
    per_step = bool(estimator.output == "sequence" or estimator.stateful)
    pooling = _pooling(estimator, per_step)
    classifier = is_classifier(estimator)
    n_outputs = params["weight_out"].shape[0]
    if not classifier:
        link = "identity"
    elif n_outputs == 1:
        link = "logistic"
    else:
        link = "softmax"
    input_kind = getattr(estimator, "_input_kind", "2d")
    model = RecurrentModel(
        cell=estimator.cell,
        activation=estimator.activation,
        params=params,
        link=link,
        classes=np.array(estimator.classes_) if classifier else None,
        per_step=per_step,
        pooling=pooling,
        stateful=bool(estimator.stateful),
        feedback=bool(estimator.output_feedback),
        input_kind=input_kind,
        n_timesteps=(int(estimator.n_features_in_) if input_kind == "2d" else None),
        state={},
    )
    # The state's sizes are the model's (n_state, n_hidden, n_outputs).
    return replace(model, state=_start_state(model, estimator))


def _check_layout(estimator, params):
    if any(name.endswith("_l0") for name in params):
        raise ValueError(
            f"Export does not support stacked layers yet (n_hidden="
            f"{estimator.n_hidden!r}, a stack of {estimator.cell!r} layers); "
            "models with one layer (an int n_hidden) can be exported."
        )
    if estimator.cell not in EXPORTED_CELLS:
        raise ValueError(
            f"Export supports cell in {sorted(EXPORTED_CELLS)}; "
            f"cell={estimator.cell!r} cannot be exported yet."
        )
    if estimator.cell in LRU_CELL_PARAMS:
        # Exactly the cell's names: a gated LRU's params_ hold the LRU's too.
        expected = LRU_CELL_PARAMS[estimator.cell] | READOUT_PARAMS
        matches = set(params) == expected and (
            # The fitted cell's inputs, and the fed-back columns after them.
            params["B_re"].shape[1] - estimator._model.cell.m
            == (params["weight_out"].shape[0] if estimator.output_feedback else 0)
        )
    else:
        # The fitted cell's units (weight_out may read 2n: "mean+last").
        n = estimator._model.cell.n
        matches = (
            "weight_ih" in params
            and params["weight_ih"].shape[0] == GATES[estimator.cell] * n
            and (params["weight_hh"].ndim == 1) == (estimator.cell in ELEMENTWISE_CELLS)
            and ("weight_fb" in params) == bool(estimator.output_feedback)
        )
    if not matches:
        raise ValueError(
            f"The settings of this {type(estimator).__name__} "
            f"(cell={estimator.cell!r}, output_feedback="
            f"{estimator.output_feedback}) do not match its fitted parameters: "
            "they were changed with set_params after fitting. Call fit again, "
            "or restore the settings, before exporting."
        )


def _pooling(estimator, per_step):
    """The pooling ``predict`` reads, checked against the other settings.

    ``fit`` refuses a pooled readout with a target per step, a stream or
    output feedback; ``set_params`` after fitting can still combine them,
    or ask for a pooling the fitted readout cannot read (``"mean+last"``
    gives 2n numbers, the others n).
    """
    from .._settings import cell_follows

    # What predict reads: the fitted cell's pooling, or that of the cell
    # predict would rebuild after a set_params (cell_follows refuses one of
    # another readout width, as predict does).
    cell = estimator._model.cell
    if not cell_follows(cell, estimator):
        cell = estimator._make_cell(cell.m, cell.o)
    pooling = getattr(cell, "pooling", "last")
    if pooling == "last":
        return pooling
    if per_step or estimator.output_feedback:
        raise ValueError(
            f"This {type(estimator).__name__} has pooling={pooling!r} together "
            f"with output={estimator.output!r}, stateful={estimator.stateful} "
            f"and output_feedback={estimator.output_feedback}: a pooled readout "
            "reads one target per sequence, without feedback, and fit refuses "
            "these settings. They were changed with set_params after fitting; "
            "restore them, or call fit again, before exporting."
        )
    return pooling


def _start_state(model, estimator):
    """``RecurrentModel.state`` of ``model``, described from ``estimator``."""
    n, dtype = model.n_hidden, model.dtype
    state = {"h": np.zeros(model.n_state, dtype=dtype)}
    if model.pooling in ("mean", "mean+last"):
        state["pool"] = np.zeros(n, dtype=dtype)
        state["steps"] = np.zeros(1, dtype=dtype)
    elif model.pooling == "max":
        state["pool"] = np.full(n, -np.inf, dtype=dtype)
    if model.cell in CELLS_WITH_MEMORY:
        state["c"] = np.zeros(n, dtype=dtype)
    if model.feedback:
        state["feedback"] = np.zeros(model.n_outputs, dtype=dtype)
    stream = estimator._model.stream if model.stateful else None
    if stream is not None:
        # The stream's hidden entry is the cell's whole state: "h", then c
        # for the LSTMs.
        hidden = np.asarray(stream["hidden"], dtype=dtype)
        state["h"] = hidden[: model.n_state].copy()
        if "c" in state:
            state["c"] = hidden[n : 2 * n].copy()
        if "feedback" in state:
            state["feedback"] = np.array(stream["feedback"], dtype=dtype)
    return state
