"""What the graphs output: predictions, labels and class probabilities.

The conventions are skl2onnx's: a regressor outputs one float tensor whose
last axis has one entry per output (``[N, 1]`` for a 1D y); a classifier
outputs the label and the probability of every class, columns in the order
of ``classes_``, and integer labels as int64, string labels as strings
(float labels with integer values become int64, as skl2onnx makes them).
"""

import numpy as np
from onnx import TensorProto


def label_classes(classes, nocl=False):
    """The class labels as an ONNX label tensor holds them."""
    classes = np.asarray(classes)
    if nocl:
        return np.arange(classes.shape[0], dtype=np.int64)
    if classes.dtype.kind in "iub":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        as_int = classes.astype(np.int64)
        if not np.array_equal(as_int, classes):
            raise ValueError(
                "ONNX labels are integers or strings, and the classes "
                f"{classes!r} are floats that are not all whole numbers. Fit "
                "the classifier on integer or string labels, or convert with "
                "options={'nocl': True} (labels 0 to n_classes - 1)."
            )
        return as_int
    return np.array([str(c) for c in classes], dtype=object)


def label_type_is_string(classes, nocl=False):
    return label_classes(classes, nocl).dtype == object


def regressor_head(g, z, name):
    """The prediction, under the output name ``name``."""
    return g.op("Identity", z, outputs=[name])


def classifier_head(g, model, z, label_name, proba_name, *, nocl=False):
    """Label and class probabilities from the readout z (..., o)."""
    if model.link == "logistic":
        p = g.op("Sigmoid", z)
        g.op(
            "Concat",
            g.op("Sub", g.const(np.ones(1), "one"), p),
            p,
            axis=-1,
            outputs=[proba_name],
        )
        # predict picks classes_[1] when the logit is positive.
        positive = g.op("Greater", z, g.const(np.zeros(1), "zero"))
        index = g.op(
            "Squeeze", g.op("Cast", positive, to=TensorProto.INT64), g.ints([-1])
        )
    else:
        g.op("Softmax", z, axis=-1, outputs=[proba_name])
        index = g.op("ArgMax", z, axis=-1, keepdims=0)
    classes = g.const(label_classes(model.classes, nocl), "classes")
    g.op("Gather", classes, index, axis=0, outputs=[label_name])
