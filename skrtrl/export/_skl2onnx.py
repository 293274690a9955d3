"""The estimators' converters, registered with skl2onnx.

Graph inputs, by the form of X the estimator was fitted on:

* 2D X (univariate sequences, one per row): ``X`` float ``[N, T]`` with the
  fitted number of columns T (what a ``StandardScaler`` in front passes on);
* 3D or list X: ``X`` float ``[N, T, n_features]``, sequences padded to a
  common length T;
* a stream (``stateful=True``): ``X`` float ``[n_steps, n_features]``, the
  next rows of the stream, run from the estimator's current stream state.

A second, optional input ``lengths`` (int64 ``[N]``, each at least 1) gives
the true length of each padded sequence. Without it every sequence has T
steps.
"""

import numpy as np
from sklearn.base import is_classifier

from ._graph import GraphBuilder, sequence_outputs
from ._heads import classifier_head, label_type_is_string, regressor_head
from ._model import describe

#: Lowest ONNX opset the converters emit (Squeeze / Unsqueeze with axes as
#: inputs, Softmax on one axis, the recurrent operators' current form).
MIN_OPSET = 14
REGRESSOR_ALIAS = "SkrtrlRTRLRegressor"
CLASSIFIER_ALIAS = "SkrtrlRTRLClassifier"
REGRESSOR_OPTIONS = {"scan": [False, True]}
CLASSIFIER_OPTIONS = {
    "scan": [False, True],
    "zipmap": [True, False, "columns"],
    "nocl": [False, True],
}


def register_converters():
    """Register both estimators' parsers, shape calculators and converters."""
    from skl2onnx import update_registered_converter

    from .._estimators import RTRLClassifier, RTRLRegressor

    update_registered_converter(
        RTRLRegressor,
        REGRESSOR_ALIAS,
        _calculate_shapes,
        _convert,
        overwrite=True,
        parser=_parse,
        options=REGRESSOR_OPTIONS,
    )
    update_registered_converter(
        RTRLClassifier,
        CLASSIFIER_ALIAS,
        _calculate_shapes,
        _convert,
        overwrite=True,
        parser=_parse,
        options=CLASSIFIER_OPTIONS,
    )


def _parse(scope, model, inputs, custom_parsers=None):
    """Declare the estimator's operator and its outputs.

    Classifiers output ``label`` and ``probabilities``; for one prediction
    per sequence (or per row of a stream) the ``zipmap`` option then turns
    them into skl2onnx's usual ``output_label`` and ``output_probability``
    (a list of dictionaries, or one column per class). Per-step outputs of
    ``output="sequence"`` are 3D, which ZipMap cannot take: they stay
    tensors whatever ``zipmap`` says.
    """
    from skl2onnx import get_model_alias
    from skl2onnx._parse import _apply_zipmap
    from skl2onnx.common.data_types import Int64TensorType, guess_tensor_type

    operator = scope.declare_local_operator(get_model_alias(type(model)), model)
    operator.inputs = inputs
    float_type = guess_tensor_type(inputs[0].type)
    if not is_classifier(model):
        operator.outputs.append(scope.declare_local_variable("variable", float_type))
        return operator.outputs
    label = scope.declare_local_variable("label", Int64TensorType())
    probabilities = scope.declare_local_variable("probabilities", float_type)
    operator.outputs.extend([label, probabilities])
    options = scope.get_options(model, dict(zipmap=True))
    per_sequence_steps = model.output == "sequence" and not model.stateful
    if options["zipmap"] is False or per_sequence_steps:
        return operator.outputs
    return _apply_zipmap(
        options["zipmap"], scope, model, inputs[0].type, [label, probabilities]
    )


def _check_inputs(operator, model):
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int32TensorType,
        Int64TensorType,
    )

    inputs = operator.inputs
    name = type(operator.raw_operator).__name__
    if len(inputs) not in (1, 2):
        raise ValueError(
            f"{name} takes the input X and optionally the sequence lengths; "
            f"got {len(inputs)} inputs."
        )
    if not isinstance(inputs[0].type, FloatTensorType | DoubleTensorType):
        raise TypeError(
            f"{name}'s input X must be a float or double tensor; got {inputs[0].type}."
        )
    rank = {"2d": 2, "stream": 2}.get(model.input_kind, 3)
    shape = inputs[0].type.shape
    if shape is not None and len(shape) != rank:
        raise ValueError(
            f"{name} was fitted on {_FORMS[model.input_kind]}, so X must be a "
            f"{rank}D tensor {_SHAPES[model.input_kind]}; got shape {shape}."
        )
    if len(inputs) == 2:
        if model.stateful:
            raise ValueError(
                f"A stateful {name} reads the rows of one stream: it takes no "
                "sequence lengths."
            )
        if not isinstance(inputs[1].type, Int64TensorType | Int32TensorType):
            raise TypeError(
                f"{name}'s second input holds the sequence lengths and must be "
                f"an int64 tensor of shape [N]; got {inputs[1].type}."
            )


_FORMS = {
    "2d": "2D X (univariate sequences, one per row)",
    "3d": "3D X",
    "list": "a list of sequences",
    "stream": "a stream (stateful=True)",
}
_SHAPES = {
    "2d": "[N, n_timesteps]",
    "3d": "[N, T, n_features]",
    "list": "[N, T, n_features] (padded)",
    "stream": "[n_steps, n_features]",
}


def _output_shape(model, X_shape):
    """Shape of the per-sequence axes of the outputs: [N] or [N, T]."""
    first = X_shape[0] if X_shape else None
    if model.per_step and not model.stateful:
        second = X_shape[1] if X_shape and len(X_shape) > 1 else None
        return [first, second]
    return [first]


def _calculate_shapes(operator):
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    model = describe(operator.raw_operator)
    _check_inputs(operator, model)
    X = operator.inputs[0]
    lead = _output_shape(model, X.type.shape)
    float_type = type(X.type)
    if model.classes is None:
        operator.outputs[0].type = float_type(lead + [model.n_outputs])
        return
    nocl = _options(operator.raw_operator, None, operator).get("nocl", False)
    label_type = (
        StringTensorType
        if label_type_is_string(model.classes, nocl)
        else Int64TensorType
    )
    operator.outputs[0].type = label_type(lead)
    operator.outputs[1].type = float_type(lead + [len(model.classes)])


def _options(estimator, container=None, operator=None):
    defaults = {"scan": False}
    if is_classifier(estimator):
        defaults["nocl"] = False
    if container is not None:
        return container.get_options(estimator, defaults)
    return operator.scope_inst.get_options(estimator, defaults)


def _convert(scope, operator, container):
    estimator = operator.raw_operator
    model = describe(estimator)
    _check_inputs(operator, model)
    opset = container.target_opset_any_domain("")
    if opset is not None and opset < MIN_OPSET:
        raise ValueError(
            f"The {type(estimator).__name__} converter needs ONNX opset "
            f"{MIN_OPSET} or later; target_opset is {opset}."
        )
    options = _options(estimator, container)
    X = operator.inputs[0]
    dtype = np.float64 if type(X.type).__name__ == "DoubleTensorType" else np.float32
    g = GraphBuilder(dtype, scope.get_unique_variable_name, opset=opset)
    lengths = operator.inputs[1].full_name if len(operator.inputs) == 2 else None
    z = sequence_outputs(g, model, X.full_name, lengths, scan=options["scan"])
    outputs = operator.outputs
    if model.classes is None:
        regressor_head(g, z, outputs[0].full_name)
    else:
        classifier_head(
            g, model, z, outputs[0].full_name, outputs[1].full_name,
            nocl=options["nocl"],
        )  # fmt: skip
    add_to_container(g, container)


def add_to_container(g, container):
    """Move the builder's initializers and nodes into skl2onnx's container."""
    from onnx import helper

    for tensor in g.initializers:
        # The container copies a TensorProto's raw data, which string
        # tensors do not use: give it their values instead.
        content = list(tensor.string_data) if tensor.string_data else tensor
        container.add_initializer(
            tensor.name, tensor.data_type, list(tensor.dims), content
        )
    for node in g.nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        container.add_node(
            node.op_type,
            list(node.input),
            list(node.output),
            op_domain=node.domain,
            name=node.name,
            **attrs,
        )
