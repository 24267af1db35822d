"""The bottom layer of MuseTag: helpers every stage may import, and that import no stage.

=================  ================================================================================
``core.files``     atomic writes (files and directories) with the permissions a plain ``open()``
                   gives under the user's umask; JSON; ``tf.io.gfile`` URLs (``s3://`` …)
``core.locks``     one writer per output: an advisory lock naming its holder; stale locks taken over
``core.procs``     worker processes that end when the job that started them dies
``core.errors``    user-facing errors and the documented exit codes
``core.logs``      the one logging set-up of every command; TensorFlow imported without its noise
``core.cli``       argument types and the flags every command shares
``core.records``   strict dataclass-from-dict conversion (unknown keys name themselves)
=================  ================================================================================

Nothing here imports TensorFlow at module level, so a command's ``--help`` and argument errors
answer at once.
"""
