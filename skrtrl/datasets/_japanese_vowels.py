"""Loader for the bundled Japanese Vowels speaker recognition data set."""

from importlib import resources

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_japanese_vowels"]

_DATA_FILE = "japanese_vowels.npz"
_N_FEATURES = 12
_N_CLASSES = 9

_DESCR = """\
.. _japanese_vowels_dataset:

Japanese Vowels speaker recognition data set
--------------------------------------------

**Data Set Characteristics:**

:Number of sequences: 640 (270 training, 370 test)
:Sequence length: 7 to 29 frames (variable)
:Number of features per frame: 12 LPC cepstrum coefficients
:Number of classes: 9 speakers, labelled 1 to 9
:Training set: 30 sequences per speaker
:Test set: 31, 35, 88, 44, 29, 24, 40, 50 and 29 sequences for
    speakers 1 to 9
:Missing values: none

Nine male Japanese speakers uttered the two vowels /ae/ in succession.
Each utterance was sampled at 10 kHz and processed by a 12th order
linear prediction analysis (frame length 25.6 ms, shift 6.4 ms),
giving a discrete-time series of 12 LPC cepstrum coefficients per
frame. The task is to identify the speaker from the utterance. The
split into a training and a test set is the one distributed with the
original data: the training set holds 30 utterances per speaker, the
test set was recorded separately and holds between 24 and 88
utterances per speaker.

The values are stored exactly as distributed (six decimal places).

.. topic:: References

  - M. Kudo, J. Toyama and M. Shimbo, "Multidimensional curve
    classification using passing-through regions", Pattern Recognition
    Letters 20 (11-13), 1999, pp. 1103-1111.
  - UCI Machine Learning Repository, "Japanese Vowels",
    https://archive.ics.uci.edu/dataset/128/japanese+vowels
    (licensed under CC BY 4.0).
  - The bundled file was converted from the ``JapaneseVowels`` files of
    the aeon package distribution (BSD-3-Clause licence).
"""


def _split(values, lengths):
    """Split concatenated frames into a list of per-sequence arrays."""
    bounds = np.cumsum(lengths)[:-1]
    return [np.ascontiguousarray(s) for s in np.split(values, bounds, axis=0)]


def load_japanese_vowels(*, return_X_y=False):
    """Load the Japanese Vowels speaker recognition data set.

    A multivariate, variable-length sequence classification data set:
    640 utterances of the Japanese vowels /ae/ by 9 male speakers, each
    a sequence of 7 to 29 frames of 12 LPC cepstrum coefficients. The
    target is the speaker (integer labels 1 to 9). The standard split
    into 270 training and 370 test sequences is used.

    ====================   =======
    Classes                      9
    Training sequences         270
    Test sequences             370
    Features per frame          12
    Frames per sequence    7 to 29
    ====================   =======

    The data is read from a file shipped with the package; nothing is
    downloaded.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, y_train, y_test)`` instead of
        a :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        X_train : list of ndarray of shape (n_frames_i, 12)
            The 270 training sequences, float64.
        y_train : ndarray of shape (270,)
            Speaker labels of the training sequences, int64 in 1..9.
        X_test : list of ndarray of shape (n_frames_i, 12)
            The 370 test sequences, float64.
        y_test : ndarray of shape (370,)
            Speaker labels of the test sequences, int64 in 1..9.
        feature_names : list of str
            ``["lpc_0", ..., "lpc_11"]``, the names of the 12 columns.
        target_names : ndarray of shape (9,)
            ``["speaker_1", ..., "speaker_9"]``; label ``k`` corresponds
            to ``target_names[k - 1]``.
        DESCR : str
            Description of the data set.

    (X_train, X_test, y_train, y_test) : tuple
        Returned instead of the Bunch if ``return_X_y`` is True.

    Notes
    -----
    Source: M. Kudo, J. Toyama and M. Shimbo, "Multidimensional curve
    classification using passing-through regions", Pattern Recognition
    Letters 20 (1999) 1103-1111. Distributed by the UCI Machine Learning
    Repository under the CC BY 4.0 licence. The bundled file was
    converted from the copy in the aeon package distribution
    (BSD-3-Clause licence); the values are identical.

    Examples
    --------
    >>> from skrtrl.datasets import load_japanese_vowels
    >>> data = load_japanese_vowels()
    >>> len(data.X_train), len(data.X_test)
    (270, 370)
    >>> data.X_train[0].shape
    (20, 12)
    >>> data.y_train[:3]
    array([1, 1, 1])
    >>> X_train, X_test, y_train, y_test = load_japanese_vowels(return_X_y=True)
    """
    source = resources.files(__package__) / "data" / _DATA_FILE
    with source.open("rb") as fh, np.load(fh) as archive:
        arrays = {key: archive[key] for key in archive.files}

    # Frames are stored as int32 multiples of 1 / scale (the original values
    # have six decimals); dividing gives the correctly rounded float64 value.
    scale = float(arrays["scale"])
    splits = {}
    for part in ("train", "test"):
        values = arrays[f"X_{part}"].astype(np.float64) / scale
        lengths = arrays[f"lengths_{part}"].astype(np.int64)
        splits[f"X_{part}"] = _split(values, lengths)
        splits[f"y_{part}"] = arrays[f"y_{part}"].astype(np.int64)

    if return_X_y:
        return (
            splits["X_train"],
            splits["X_test"],
            splits["y_train"],
            splits["y_test"],
        )

    return Bunch(
        X_train=splits["X_train"],
        y_train=splits["y_train"],
        X_test=splits["X_test"],
        y_test=splits["y_test"],
        feature_names=[f"lpc_{i}" for i in range(_N_FEATURES)],
        target_names=np.array([f"speaker_{k}" for k in range(1, _N_CLASSES + 1)]),
        DESCR=_DESCR,
    )
