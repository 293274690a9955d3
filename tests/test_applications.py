"""The applications: a plant to identify and control, and English text.

The data functions are checked against independent references; the
examples' claims (``examples/plot_plant_control.py`` and
``examples/plot_character_language_model.py``) are checked at a smaller
scale, with thresholds on data the models did not learn from.
"""

import copy

import numpy as np
import pytest

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl.datasets import load_sklearn_descriptions, make_narendra_plant

# --------------------------------------------------------------------------
# the plant


def _reference_plant(u):
    """Narendra & Parthasarathy (1990), Example 4, written out directly."""
    y = [0.0, 0.0, 0.0]  # y(-2), y(-1), y(0)
    u = [0.0, *u]  # u(-1), u(0), ...
    for k in range(len(u) - 1):
        yk, yk1, yk2 = y[-1], y[-2], y[-3]
        y.append(
            (yk * yk1 * yk2 * u[k] * (yk2 - 1.0) + u[k + 1])
            / (1.0 + yk1**2 + yk2**2)
        )
    return np.array(y[3:])


def test_narendra_plant_follows_its_equation():
    X, y = make_narendra_plant(300, random_state=0)
    assert X.shape == (300, 1) and y.shape == (300,)
    assert np.abs(X).max() <= 1.0 and X.std() > 0.5
    np.testing.assert_allclose(y, _reference_plant(X[:, 0]), rtol=0, atol=1e-14)
    # the output is not a function of the current input alone
    assert abs(np.corrcoef(X[:, 0], y)[0, 1]) < 0.99


def test_narendra_plant_given_inputs_and_sinusoid():
    u = np.linspace(-2.0, 2.0, 50)
    X, y = make_narendra_plant(50, u=u)
    np.testing.assert_array_equal(X[:, 0], u)
    np.testing.assert_allclose(y, _reference_plant(u), rtol=0, atol=1e-14)
    X, _ = make_narendra_plant(800, u="sinusoid", amplitude=0.5)
    k = np.arange(800)
    expected = np.where(
        k < 500,
        np.sin(2 * np.pi * k / 250),
        0.8 * np.sin(2 * np.pi * k / 250) + 0.2 * np.sin(2 * np.pi * k / 25),
    )
    np.testing.assert_allclose(X[:, 0], 0.5 * expected, atol=1e-15)


def test_narendra_plant_noise_and_reproducibility():
    X, y = make_narendra_plant(2000, random_state=3)
    X2, y2 = make_narendra_plant(2000, random_state=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    _, y_noisy = make_narendra_plant(2000, u=X[:, 0], noise=0.1, random_state=4)
    residual = y_noisy - y
    assert 0.09 < residual.std() < 0.11
    # the noise is measured, not fed into the dynamics
    np.testing.assert_allclose(y, _reference_plant(X[:, 0]), atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_steps": 0}, "n_steps"),
        ({"n_steps": 2.5}, "n_steps"),
        ({"u": "noise"}, "u must be"),
        ({"u": np.zeros(3)}, "shape"),
        ({"u": [0.0, np.nan] * 5}, "finite"),
        ({"u": object()}, "u must be"),
        ({"amplitude": 0.0}, "amplitude"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_narendra_plant_validation(kwargs, match):
    kwargs = {"n_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_narendra_plant(**kwargs)


# --------------------------------------------------------------------------
# the text


def test_sklearn_descriptions_text():
    data = load_sklearn_descriptions()
    assert len(data.text) > 20_000
    assert data.codes.dtype == np.int64 and data.codes.shape == (len(data.text),)
    assert "".join(data.alphabet[c] for c in data.codes) == data.text
    assert data.alphabet[-1] == "~"
    assert len(set(data.alphabet)) == len(data.alphabet)
    assert sorted(data.alphabet[:-1]) == list(data.alphabet[:-1])
    assert set("abcdefghijklmnopqrstuvwxyz \n.") <= set(data.alphabet)
    assert data.text == data.text.lower()
    assert "  " not in data.text and "\t" not in data.text
    assert all(name.endswith(".rst") for name in data.files)
    assert "iris.rst" in data.files
    assert "iris plants dataset" in data.text
    counts = np.bincount(data.codes, minlength=len(data.alphabet))
    assert counts[:-1].min() >= 20


def test_sklearn_descriptions_min_count():
    few = load_sklearn_descriptions(min_count=1000)
    many = load_sklearn_descriptions(min_count=1)
    assert len(few.text) == len(many.text)
    assert len(few.alphabet) < 20 < len(many.alphabet)
    counts = np.bincount(few.codes, minlength=len(few.alphabet))
    assert counts[:-1].min() >= 1000
    # the rare characters all became "~", the others are unchanged
    for a, b in zip(few.text[:5000], many.text[:5000]):
        assert a == b or a == "~"
    with pytest.raises(ValueError, match="min_count"):
        load_sklearn_descriptions(min_count=0)
