"""training package of MuseTag: JSON config -> one custom tf.distribute training loop -> run dir.

Modules (``config`` imports no TensorFlow, so config errors are instant):

- :mod:`training.config`     schema (frozen dataclasses), key-naming errors, ``--set`` overrides
- :mod:`training.trainer`    :class:`~training.trainer.Trainer` (strategy, loop, validation,
  checkpoints, resume, export)
- :mod:`training.schedules`  constant / step / cyclic / one-cycle / range-test LR schedules
- :mod:`training.monitors`   early stopping and reduce-on-plateau state machines
- :mod:`training.data`       TFRecord (``preprocessing.dataset``) and in-memory data sources
- :mod:`training.finetune`   initialise from another run dir, freeze the frontend
- :mod:`training.strategy`   strategy selection, chief/worker roles
- :mod:`training.rundir`     run-dir files written atomically, history.csv
- ``python -m training`` (:mod:`training.__main__`) and ``python -m training.lr_find``
"""
