"""Multi-optimizer recipes: which phase of ``optimization.phases`` an epoch belongs to.

A recipe is a list of phases run one after the other, each with its own optimizer, constant learning
rate and coupled weight decay (``docs/training.md``). Phase ``i`` covers the epochs
``start_i + 1 .. start_i + epochs_i`` (1-based, ``start_0 = 0``); the last phase may have
``epochs = null`` and then runs until ``optimization.epochs``. At the first epoch of a phase the
trainer switches: it reloads the best weights when ``reload_best`` is set and starts a new optimizer
unless ``keep_optimizer_state`` is set.

Won et al. 2020 (https://github.com/minzwon/sota-music-tagging-models, ``training/solver.py``) switch
at FIXED epochs, not on a plateau: Adam (lr 1e-4, weight decay 1e-4) for 80 epochs; then, each time
reloading the best model by validation loss, SGD (Nesterov, momentum 0.9, weight decay 1e-4) at 1e-3
for 20 epochs, 1e-4 for 20 epochs (the same SGD optimizer, only its learning rate changed) and 1e-5
until the end of the run (200 epochs by default, so 80 epochs at 1e-5).

No TensorFlow here: the command line checks configs with it.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ['phase_starts', 'phase_of_epoch', 'first_epoch_of_phase']


def phase_starts(phases: Sequence, total_epochs: int) -> list[int]:
    """Completed epochs before each phase starts (``[0, e_0, e_0 + e_1, ...]``), one per phase."""
    starts, done = [], 0
    for phase in phases:
        starts.append(done)
        done += phase.epochs if phase.epochs is not None else max(total_epochs - done, 0)
    return starts


def phase_of_epoch(phases: Sequence, epoch: int, total_epochs: int) -> int:
    """Index of the phase that trains ``epoch`` (1-based); epoch 0 (nothing trained) is phase 0.

    Epochs after the last fixed-length phase belong to the last phase.
    """
    index = 0
    for i, start in enumerate(phase_starts(phases, total_epochs)):
        if epoch > start:
            index = i
    return index


def first_epoch_of_phase(phases: Sequence, index: int, total_epochs: int) -> int:
    """The 1-based epoch at which phase ``index`` starts."""
    return phase_starts(phases, total_epochs)[index] + 1
