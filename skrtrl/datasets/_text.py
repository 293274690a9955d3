"""English text that ships with scikit-learn, as a stream of characters."""

import re
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from ._generators import _check_int

__all__ = ["load_sklearn_descriptions"]

#: The symbol that stands for every rare character.
RARE_SYMBOL = "~"


def load_sklearn_descriptions(*, min_count=20):
    """Load scikit-learn's data set descriptions as a stream of characters.

    The descriptions of scikit-learn's data sets (the files
    ``sklearn/datasets/descr/*.rst``, the ``DESCR`` texts of its loaders)
    are English prose with reStructuredText markup and a few tables, some
    40,000 characters in all. They are installed with scikit-learn, so
    nothing is downloaded. The text is prepared for a character-level
    model:

    1. the files are read in the order of their names and concatenated;
    2. the text is lower-cased;
    3. every run of spaces and tabs becomes one space (the tables align
       their columns with long runs of spaces); line breaks are kept;
    4. every character that occurs fewer than ``min_count`` times in the
       result, and ``"~"`` itself, becomes ``"~"``.

    The alphabet is the sorted set of the characters that remain, with
    ``"~"`` last (it is always there, even when no character is rare).

    Parameters
    ----------
    min_count : int, default=20
        Characters seen fewer times than this (>= 1) are mapped to ``"~"``.
        The default keeps the 26 letters, the digits, the space, the line
        break and the common punctuation: an alphabet of about 50 symbols.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the entries:

        text : str
            The prepared text.
        codes : ndarray of shape (len(text),)
            The text as integers, int64: ``alphabet[codes[i]] == text[i]``.
        alphabet : str
            The symbols, in the order of their codes.
        files : list of str
            The names of the files read, in order.

    Notes
    -----
    The files belong to scikit-learn, distributed under the BSD 3-Clause
    licence (Copyright the scikit-learn developers); they are read from the
    installed package, not copied into this one. Their content, hence the
    stream, may differ slightly between scikit-learn versions.

    References
    ----------
    F. Pedregosa et al., "Scikit-learn: Machine Learning in Python",
    Journal of Machine Learning Research 12, 2011, pp. 2825-2830.

    Examples
    --------
    >>> from skrtrl.datasets import load_sklearn_descriptions
    >>> data = load_sklearn_descriptions()
    >>> data.text == "".join(data.alphabet[c] for c in data.codes)
    True
    >>> data.alphabet[-1]
    '~'
    """
    min_count = _check_int(min_count, "min_count", min_value=1)
    folder = resources.files("sklearn.datasets").joinpath("descr")
    paths = sorted(
        (p for p in folder.iterdir() if p.name.endswith(".rst")),
        key=lambda p: p.name,
    )
    raw = "".join(p.read_text(encoding="utf-8") for p in paths).lower()
    raw = re.sub(r"[ \t]+", " ", raw)
    symbols, counts = np.unique(np.array(list(raw)), return_counts=True)
    kept = {s for s, c in zip(symbols.tolist(), counts.tolist()) if c >= min_count}
    kept.discard(RARE_SYMBOL)
    alphabet = "".join(sorted(kept)) + RARE_SYMBOL
    text = "".join(ch if ch in kept else RARE_SYMBOL for ch in raw)
    index = {s: i for i, s in enumerate(alphabet)}
    codes = np.fromiter((index[ch] for ch in text), dtype=np.int64, count=len(text))
    return Bunch(
        text=text,
        codes=codes,
        alphabet=alphabet,
        files=[p.name for p in paths],
    )
