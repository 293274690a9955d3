"""Displays of the gradient inspections, in the style of scikit-learn's.

Each Display holds the arrays of one inspection; ``from_estimator`` computes
them and plots, ``plot`` draws on a given (or new) axes and returns the
Display with ``ax_``, ``figure_`` and the drawn artists set. matplotlib is
imported only inside ``plot``.
"""

from numbers import Integral

import numpy as np

from ._gradients import (
    _check_estimator,
    _input_saliency_packed,
    _pack,
    credit_over_time,
    recurrent_jacobian_spectrum,
)


def _check_matplotlib(caller):
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib. You can install matplotlib with "
            "`pip install matplotlib`."
        ) from exc


def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax


def _integer_xticks(ax):
    """Steps and distances are whole numbers."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _positive_or_nan(values):
    """Values for a log axis: zeros (e.g. dead ReLU units) become gaps."""
    values = np.array(values, dtype=np.float64)
    values[~(values > 0)] = np.nan
    return values


def _pad(arrays):
    """Stack arrays of varying first length, padding with NaN at the end."""
    T = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), T) + arrays[0].shape[1:], np.nan)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


class CreditOverTimeDisplay:
    """Gradient contributions by distance from the end of the sequence.

    The norm of each step's contribution to the gradient of the final-step
    loss, against its distance from the last step, on a log axis: a straight
    descending line is the geometric decay of vanishing gradients. Create it
    with :meth:`from_estimator`, or from the output of
    :func:`~skrtrl.inspection.credit_over_time`.

    Parameters
    ----------
    distances : ndarray of shape (max_len,)
        Distances from the last step.
    norms : ndarray of shape (n_sequences, max_len)
        Norm of the contribution per sequence and distance (NaN past a
        sequence's start).
    mean_norms : ndarray of shape (max_len,)
        Mean over the sequences.
    estimator_name : str, default=None
        Name for the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The mean norms.
    sequence_lines_ : list of matplotlib Line2D or None
        One faint line per sequence, when drawn.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure holding the axes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.inspection import CreditOverTimeDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(20, 6))
    >>> reg = RTRLRegressor(n_hidden=4, random_state=0).partial_fit(X, X[:, 0])
    >>> display = CreditOverTimeDisplay.from_estimator(reg, X, X[:, 0])
    >>> display.line_.get_xdata().shape
    (6,)
    """

    def __init__(self, *, distances, norms, mean_norms, estimator_name=None):
        self.distances = distances
        self.norms = norms
        self.mean_norms = mean_norms
        self.estimator_name = estimator_name

    def plot(
        self,
        ax=None,
        *,
        name=None,
        show_sequences=False,
        normalize=False,
        line_kwargs=None,
        sequence_kwargs=None,
    ):
        """Plot the norms against the distance, on a log y-axis.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        name : str, default=None
            Legend label of the mean line; ``estimator_name`` when None.
        show_sequences : bool, default=False
            Also draw one faint line per sequence.
        normalize : bool, default=False
            Divide by the mean norm at distance 0, so that models with
            different loss levels start at 1 and their decay compares.
        line_kwargs : dict, default=None
            Keyword arguments for the mean line (``ax.plot``).
        sequence_kwargs : dict, default=None
            Keyword arguments for the per-sequence lines.

        Returns
        -------
        display : CreditOverTimeDisplay
            The Display, with ``ax_``, ``figure_`` and the lines set.
        """
        _check_matplotlib("CreditOverTimeDisplay.plot")
        ax = _axes(ax)
        name = self.estimator_name if name is None else name
        scale = 1.0
        if normalize and self.mean_norms[0] > 0:
            scale = 1.0 / self.mean_norms[0]
        self.sequence_lines_ = None
        if show_sequences:
            kwargs = {"color": "0.6", "alpha": 0.25, "linewidth": 0.8}
            kwargs.update(sequence_kwargs or {})
            self.sequence_lines_ = ax.plot(
                self.distances,
                _positive_or_nan(self.norms.T * scale),
                **kwargs,
            )
        kwargs = {"linewidth": 2, "marker": "o", "markersize": 3}
        if name is not None:
            kwargs["label"] = f"{name} (mean)" if show_sequences else name
        kwargs.update(line_kwargs or {})
        (self.line_,) = ax.plot(
            self.distances, _positive_or_nan(self.mean_norms * scale), **kwargs
        )
        ax.set_yscale("log")
        _integer_xticks(ax)
        ax.set_xlabel("Distance from the last step")
        ax.set_ylabel(
            "Contribution norm / norm at distance 0"
            if normalize
            else "Norm of the gradient contribution"
        )
        if self.line_.get_label() and not self.line_.get_label().startswith("_"):
            ax.legend()
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        ax=None,
        name=None,
        show_sequences=False,
        normalize=False,
        line_kwargs=None,
        sequence_kwargs=None,
    ):
        """Compute the credit over time of a fitted estimator and plot it.

        Parameters
        ----------
        estimator : RTRLRegressor or RTRLClassifier
            A fitted estimator with ``stateful=False`` (any cell).
        X : array-like or list of array-like
            Sequences, in any form ``fit`` accepts.
        y : array-like or list of array-like
            Targets, as for ``fit``.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        name : str, default=None
            Legend label; the estimator's class name when None.
        show_sequences : bool, default=False
            Also draw one faint line per sequence.
        normalize : bool, default=False
            Divide by the mean norm at distance 0.
        line_kwargs, sequence_kwargs : dict, default=None
            Keyword arguments for the mean line and the per-sequence lines.

        Returns
        -------
        display : CreditOverTimeDisplay
            The Display, plotted.
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        credit = credit_over_time(estimator, X, y)
        display = cls(
            distances=credit.distances,
            norms=credit.norms,
            mean_norms=credit.mean_norms,
            estimator_name=type(estimator).__name__,
        )
        return display.plot(
            ax=ax,
            name=name,
            show_sequences=show_sequences,
            normalize=normalize,
            line_kwargs=line_kwargs,
            sequence_kwargs=sequence_kwargs,
        )


class InputSaliencyDisplay:
    """Heatmap of the derivative of the final output w.r.t. every input.

    Time steps run along the x-axis, input features along the y-axis; the
    colour scale is symmetric around zero. Create it with
    :meth:`from_estimator`, or from one array returned by
    :func:`~skrtrl.inspection.input_saliency`.

    Parameters
    ----------
    saliency : ndarray of shape (n_timesteps, n_features)
        The derivatives of one sequence.
    sequence_index : int, default=None
        Which sequence it is, for the title.
    feature_names : list of str, default=None
        Labels of the features; ``x0, x1, ...`` when None.
    estimator_name : str, default=None
        Name for the title.

    Attributes
    ----------
    im_ : matplotlib AxesImage
        The heatmap.
    colorbar_ : matplotlib Colorbar or None
        The colour bar, when drawn.
    ax_ : matplotlib Axes
        Axes with the heatmap.
    figure_ : matplotlib Figure
        Figure holding the axes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.inspection import InputSaliencyDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(20, 6, 2))
    >>> reg = RTRLRegressor(n_hidden=4, random_state=0).partial_fit(X, X[:, 0, 0])
    >>> display = InputSaliencyDisplay.from_estimator(reg, X, sequence_index=3)
    >>> display.im_.get_array().shape
    (2, 6)
    """

    def __init__(
        self, *, saliency, sequence_index=None, feature_names=None, estimator_name=None
    ):
        self.saliency = saliency
        self.sequence_index = sequence_index
        self.feature_names = feature_names
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, cmap="RdBu_r", colorbar=True, imshow_kwargs=None):
        """Draw the heatmap.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        cmap : str or matplotlib Colormap, default="RdBu_r"
            A diverging colormap suits the signed derivatives.
        colorbar : bool, default=True
            Whether to add a colour bar.
        imshow_kwargs : dict, default=None
            Keyword arguments for ``ax.imshow``.

        Returns
        -------
        display : InputSaliencyDisplay
            The Display, with ``ax_``, ``figure_``, ``im_`` and
            ``colorbar_`` set.
        """
        _check_matplotlib("InputSaliencyDisplay.plot")
        ax = _axes(ax)
        saliency = np.asarray(self.saliency, dtype=np.float64)
        n_steps, n_features = saliency.shape
        limit = float(np.max(np.abs(saliency))) if saliency.size else 0.0
        limit = limit if limit > 0 else 1.0
        kwargs = {
            "cmap": cmap,
            "vmin": -limit,
            "vmax": limit,
            "aspect": "auto",
            "interpolation": "nearest",
            "origin": "lower",
        }
        kwargs.update(imshow_kwargs or {})
        self.im_ = ax.imshow(saliency.T, **kwargs)
        names = self.feature_names
        if names is None:
            names = [f"x{j}" for j in range(n_features)]
        if len(names) != n_features:
            raise ValueError(
                f"feature_names has {len(names)} entries for {n_features} features."
            )
        if n_features <= 20:
            ax.set_yticks(np.arange(n_features), labels=list(names))
        _integer_xticks(ax)
        ax.set_xlabel("Time step")
        ax.set_ylabel("Input feature")
        title = "d output / d input"
        if self.sequence_index is not None:
            title += f", sequence {self.sequence_index}"
        if self.estimator_name is not None:
            title = f"{self.estimator_name}: {title}"
        ax.set_title(title)
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(self.im_, ax=ax)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        sequence_index=0,
        output_index=None,
        feature_names=None,
        ax=None,
        cmap="RdBu_r",
        colorbar=True,
        imshow_kwargs=None,
    ):
        """Compute the input saliency of one sequence and plot it.

        Parameters
        ----------
        estimator : RTRLRegressor or RTRLClassifier
            A fitted estimator with ``stateful=False`` (any cell).
        X : array-like or list of array-like
            Sequences, in any form ``fit`` accepts.
        sequence_index : int, default=0
            The sequence of X to show.
        output_index : int, default=None
            The output to differentiate, as in
            :func:`~skrtrl.inspection.input_saliency`.
        feature_names : list of str, default=None
            Labels of the features.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        cmap : str or matplotlib Colormap, default="RdBu_r"
            Colormap of the heatmap.
        colorbar : bool, default=True
            Whether to add a colour bar.
        imshow_kwargs : dict, default=None
            Keyword arguments for ``ax.imshow``.

        Returns
        -------
        display : InputSaliencyDisplay
            The Display, plotted.
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        params, cell = _check_estimator(estimator, "InputSaliencyDisplay")
        packed = _pack(estimator, X)
        n_seq = packed.n_sequences
        if (
            not isinstance(sequence_index, Integral)
            or isinstance(sequence_index, bool)
            or not -n_seq <= sequence_index < n_seq
        ):
            raise ValueError(
                f"sequence_index must be an integer in [0, {n_seq}) for X of "
                f"{n_seq} sequences; got {sequence_index!r}."
            )
        index = int(sequence_index) % n_seq
        (saliency,) = _input_saliency_packed(
            estimator, params, cell, packed.take([index]), output_index
        )
        display = cls(
            saliency=saliency,
            sequence_index=index,
            feature_names=feature_names,
            estimator_name=type(estimator).__name__,
        )
        return display.plot(
            ax=ax, cmap=cmap, colorbar=colorbar, imshow_kwargs=imshow_kwargs
        )


class JacobianSpectrumDisplay:
    """Largest singular value of ``dh_t / dh_{t-1}`` per step.

    The mean over the sequences, with a band between two quantiles and a
    dotted line at 1: below it the step contracts every direction of the
    state, and errors sent back through it shrink. Create it with
    :meth:`from_estimator`, or from the output of
    :func:`~skrtrl.inspection.recurrent_jacobian_spectrum`.

    Parameters
    ----------
    singular_values : list of ndarray of shape (T_i, k)
        Per sequence, the largest singular values of each step's Jacobian,
        in decreasing order (only the first column is drawn).
    spectral_radius : list of ndarray of shape (T_i,), default=None
        Per sequence, the spectral radius of each step's Jacobian.
    estimator_name : str, default=None
        Name for the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        Mean of the largest singular value per step.
    fill_ : matplotlib PolyCollection or None
        The band between the quantiles, when drawn.
    radius_line_ : matplotlib Line2D or None
        Mean spectral radius per step, when drawn.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure holding the axes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.inspection import JacobianSpectrumDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(20, 6))
    >>> reg = RTRLRegressor(n_hidden=4, random_state=0).partial_fit(X, X[:, 0])
    >>> display = JacobianSpectrumDisplay.from_estimator(reg, X)
    >>> display.line_.get_ydata().shape
    (6,)
    """

    def __init__(self, *, singular_values, spectral_radius=None, estimator_name=None):
        self.singular_values = singular_values
        self.spectral_radius = spectral_radius
        self.estimator_name = estimator_name

    def plot(
        self,
        ax=None,
        *,
        name=None,
        quantiles=(0.1, 0.9),
        show_radius=False,
        line_kwargs=None,
        fill_kwargs=None,
    ):
        """Plot the largest singular value per step.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        name : str, default=None
            Legend label; ``estimator_name`` when None.
        quantiles : tuple of two floats or None, default=(0.1, 0.9)
            Quantiles over the sequences that bound the shaded band; None
            draws no band.
        show_radius : bool, default=False
            Also draw the mean spectral radius per step (dashed).
        line_kwargs : dict, default=None
            Keyword arguments for the mean line.
        fill_kwargs : dict, default=None
            Keyword arguments for ``ax.fill_between``.

        Returns
        -------
        display : JacobianSpectrumDisplay
            The Display, with ``ax_``, ``figure_`` and the artists set.
        """
        _check_matplotlib("JacobianSpectrumDisplay.plot")
        ax = _axes(ax)
        name = self.estimator_name if name is None else name
        largest = _pad([np.asarray(s)[:, 0] for s in self.singular_values])
        steps = np.arange(largest.shape[1])
        kwargs = {"linewidth": 2}
        if name is not None:
            kwargs["label"] = name
        kwargs.update(line_kwargs or {})
        (self.line_,) = ax.plot(steps, np.nanmean(largest, axis=0), **kwargs)
        self.fill_ = None
        if quantiles is not None:
            low, high = np.nanquantile(largest, quantiles, axis=0)
            fill = {"color": self.line_.get_color(), "alpha": 0.2, "linewidth": 0}
            fill.update(fill_kwargs or {})
            self.fill_ = ax.fill_between(steps, low, high, **fill)
        self.radius_line_ = None
        if show_radius:
            if self.spectral_radius is None:
                raise ValueError("show_radius=True needs spectral_radius.")
            radius = _pad([np.asarray(r) for r in self.spectral_radius])
            (self.radius_line_,) = ax.plot(
                steps,
                np.nanmean(radius, axis=0),
                linestyle="--",
                color=self.line_.get_color(),
                label=None if name is None else f"{name} (spectral radius)",
            )
        ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1)
        _integer_xticks(ax)
        ax.set_xlabel("Time step")
        ax.set_ylabel(r"Largest singular value of $\partial h_t / \partial h_{t-1}$")
        if name is not None:
            ax.legend()
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        ax=None,
        name=None,
        quantiles=(0.1, 0.9),
        show_radius=False,
        line_kwargs=None,
        fill_kwargs=None,
    ):
        """Compute the Jacobian spectrum along the trajectories of X and plot.

        Parameters
        ----------
        estimator : RTRLRegressor or RTRLClassifier
            A fitted estimator with ``stateful=False`` (any cell).
        X : array-like or list of array-like
            Sequences, in any form ``fit`` accepts.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        name : str, default=None
            Legend label; the estimator's class name when None.
        quantiles : tuple of two floats or None, default=(0.1, 0.9)
            Quantiles over the sequences that bound the shaded band.
        show_radius : bool, default=False
            Also draw the mean spectral radius per step.
        line_kwargs, fill_kwargs : dict, default=None
            Keyword arguments for the mean line and the band.

        Returns
        -------
        display : JacobianSpectrumDisplay
            The Display, plotted.
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        spectrum = recurrent_jacobian_spectrum(estimator, X, k=1)
        display = cls(
            singular_values=spectrum.singular_values,
            spectral_radius=spectrum.spectral_radius,
            estimator_name=type(estimator).__name__,
        )
        return display.plot(
            ax=ax,
            name=name,
            quantiles=quantiles,
            show_radius=show_radius,
            line_kwargs=line_kwargs,
            fill_kwargs=fill_kwargs,
        )
