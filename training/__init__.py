"""training package of MuseTag: JSON config -> one custom tf.distribute training loop -> run dir.

Modules (``config`` and ``strategy`` import no TensorFlow at module level, so the command line
reports config errors at once):

- :mod:`training.config`       schema (frozen dataclasses), key-naming errors, ``--set`` overrides
- :mod:`training.trainer`      :class:`~training.trainer.Trainer` (strategy, loop, validation,
  checkpoints, resume, export)
- :mod:`training.schedules`    constant / step / cyclic / one-cycle / range-test LR schedules
- :mod:`training.monitors`     early stopping and reduce-on-plateau state machines
- :mod:`training.recipe`       multi-optimizer recipes (``optimization.phases``): which phase trains an epoch
- :mod:`training.augment`      SpecAugment, mixup, random gain (training step only, stateless seeds)
- :mod:`training.data`         TFRecord (``preprocessing.dataset``) and in-memory data sources
- :mod:`training.tasks`        what a run learns: tags or latent vectors (losses, linear head, cosine/recall@k)
- :mod:`training.targets`      per-track values by track id in tf.data: target vectors, example weights
- :mod:`training.finetune`     initialise from another run dir, freeze the frontend
- :mod:`training.strategy`     strategy selection, chief/worker roles
- ``musetag train`` (:mod:`training.__main__`) and ``musetag lr-find`` (:mod:`training.lr_find`)

The run directory itself (layout, history.csv, checkpoint files, export) is :mod:`modeling.rundir`
(``docs/run-directory.md``).
"""
