"""The benchmark worker (child process, imports torch) and its launcher (parent side, no torch).

From the daemon import only the parent-side modules: :mod:`benchd.runner.launch` (runs a worker and
reads its result), with :mod:`~benchd.runner.process`, :mod:`~benchd.runner.sandbox`,
:mod:`~benchd.runner.streams` and :mod:`~benchd.runner.procs` under it; :mod:`~benchd.runner.supervise`
is a stand-alone script run between the daemon and each worker. Every other module here imports torch
and runs only inside the worker process started by ``python -m benchd.runner``.
"""
