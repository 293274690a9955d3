"""Compiled kernels of skrtrl (private).

One module per cell family; each exposes a training kernel that runs a whole
minibatch of sequences forward in time with the influence (sensitivity)
update, and a forward kernel for prediction. Everything runs without the GIL.
"""
