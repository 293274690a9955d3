"""The applications: a plant to identify and control, and English text.

The data functions are checked against independent references; the
examples' claims (``examples/plot_plant_control.py`` and
``examples/plot_character_language_model.py``) are checked at a smaller
scale, with thresholds on data the models did not learn from.
"""

import ast
import copy
from pathlib import Path

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
            (yk * yk1 * yk2 * u[k] * (yk2 - 1.0) + u[k + 1]) / (1.0 + yk1**2 + yk2**2)
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
    u = np.linspace(-1.0, 1.0, 50)
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


# --------------------------------------------------------------------------
# the examples' claims, at a smaller scale


def _arx_fit(X, y):
    """Least-squares ARX model with the plant's orders (3 outputs, 2 inputs)."""
    past_y = np.r_[np.zeros(3), y]
    past_u = np.r_[0.0, X[:, 0]]
    n = len(y)
    F = np.column_stack(
        [past_y[2 : 2 + n], past_y[1 : 1 + n], past_y[:n], X[:, 0], past_u[:n]]
    )
    F = np.column_stack([F, np.ones(n)])
    return np.linalg.lstsq(F, y, rcond=None)[0]


def _arx_free_run(w, u):
    out = np.zeros(len(u) + 3)
    for k in range(len(u)):
        u_prev = u[k - 1] if k else 0.0
        out[k + 3] = w @ [out[k + 2], out[k + 1], out[k], u[k], u_prev, 1.0]
    return out[3:]


def _nrmse(prediction, target):
    return np.sqrt(np.mean((prediction - target) ** 2)) / target.std()


#: The examples' models, keyword by keyword (checked against the examples'
#: own code below, which spells them out for the reader): the plant's GRU and
#: the character model, which the tests train on shorter streams, the latter
#: with fewer units.
PLANT_MODEL = dict(
    cell="gru",
    gradient="rtrl",
    n_hidden=16,
    output_feedback=True,
    teacher_forcing=True,
    solver="adam",
    learning_rate_init=1e-3,
    alpha=0.0,
    clip_norm=5.0,
    stateful=True,
    update="step",
    random_state=0,
)
TEXT_MODEL = dict(
    cell="egru",
    gradient="rtrl",
    n_hidden=256,
    output_feedback=True,
    teacher_forcing=True,
    solver="adam",
    learning_rate_init=3e-3,
    alpha=0.0,
    clip_norm=5.0,
    stateful=True,
    update="step",
    random_state=0,
)
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "example, estimator, settings",
    [
        ("plot_plant_control.py", "RTRLRegressor", PLANT_MODEL),
        ("plot_character_language_model.py", "RTRLClassifier", TEXT_MODEL),
    ],
)
def test_the_examples_build_the_models_tested_here(example, estimator, settings):
    path = EXAMPLES_DIR / example
    if not path.exists():
        pytest.skip("the examples are not in this installation")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == estimator
    ]
    assert not call.args
    assert {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords} == settings


@pytest.fixture(scope="module")
def identified():
    """A GRU and an ARX model identified on the same stream of 30,000 steps."""
    X, y = make_narendra_plant(30_000, random_state=0)
    model = RTRLRegressor(**PLANT_MODEL)
    for begin in range(0, len(y), 5000):
        model.partial_fit(X[begin : begin + 5000], y[begin : begin + 5000])
    return model, _arx_fit(X, y)


def test_identification_free_run_beats_arx(identified):
    model, arx = identified
    for seed in (100, 101):  # fresh input sequences, never learnt from
        X, y = make_narendra_plant(500, random_state=seed)
        network = _nrmse(copy.deepcopy(model).reset_state().predict(X), y)
        linear = _nrmse(_arx_free_run(arx, X[:, 0]), y)
        assert linear > 0.15  # the plant is not linear
        assert network < 0.5 * linear, (network, linear)


def test_one_step_controller_tracks_better_than_arx(identified):
    model, arx = identified
    model = copy.deepcopy(model).reset_state()
    weights = model.params_["weight_hh"].copy()
    k = np.arange(1, 101)
    reference = 0.3 * np.sin(2 * np.pi * k / 50) + 0.2 * np.sign(np.sin(k / 25))
    grid = np.linspace(-1.0, 1.0, 41)
    u_net, u_arx = np.zeros(100), np.zeros(100)
    out_net, out_arx = np.zeros(100), np.zeros(100)
    for step in range(100):
        predicted = np.array([model.predict([[c]])[0] for c in grid])
        u_net[step] = grid[np.argmin(np.abs(predicted - reference[step]))]
        out_net[step] = make_narendra_plant(step + 1, u=u_net[: step + 1])[1][-1]
        model.update_state(u_net[step : step + 1, None], out_net[step : step + 1])
        past = [out_arx[step - i] if step - i >= 0 else 0.0 for i in (1, 2, 3)]
        u_prev = u_arx[step - 1] if step else 0.0
        free = arx @ [*past, 0.0, u_prev, 1.0]
        u_arx[step] = np.clip((reference[step] - free) / arx[3], -1.0, 1.0)
        out_arx[step] = make_narendra_plant(step + 1, u=u_arx[: step + 1])[1][-1]
    np.testing.assert_array_equal(model.params_["weight_hh"], weights)
    error_net = np.sqrt(np.mean((out_net - reference) ** 2))
    error_arx = np.sqrt(np.mean((out_arx - reference) ** 2))
    assert error_net < 0.8 * error_arx, (error_net, error_arx)


def test_character_model_beats_unigram_and_writes():
    data = load_sklearn_descriptions()
    n_symbols = len(data.alphabet)
    codes = data.codes[:8001]
    model = RTRLClassifier(**{**TEXT_MODEL, "n_hidden": 32})
    ones = np.ones((8000, 1))
    proba = model.predict_proba_partial_fit(
        ones, codes[1:], classes=np.arange(n_symbols)
    )
    bits = -np.log2(proba[np.arange(8000), codes[1:]])
    # the online unigram model with add-one smoothing, on the same stream
    counts = np.zeros(n_symbols)
    unigram = np.empty(8000)
    for t, char in enumerate(codes[1:]):
        unigram[t] = -np.log2((counts[char] + 1) / (counts.sum() + n_symbols))
        counts[char] += 1
    # the last 2,000 characters were each predicted before being learnt from
    assert bits[6000:].mean() < unigram[6000:].mean() - 0.5

    # closed-loop writing: sampled characters fed back, no learning
    weights = model.params_["weight_out"].copy()
    rng = np.random.default_rng(0)
    written = []
    for _ in range(50):
        p = model.predict_proba(ones[:1])[0]
        np.testing.assert_allclose(p.sum(), 1.0)
        written.append(rng.choice(n_symbols, p=p / p.sum()))
        model.update_state(ones[:1], written[-1:])
    np.testing.assert_array_equal(model.params_["weight_out"], weights)
    text = "".join(data.alphabet[c] for c in written)
    assert sum(ch in "etaoins " for ch in text) > 15  # English-like letters
