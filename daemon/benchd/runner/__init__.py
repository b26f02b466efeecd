"""The benchmark worker (child process, imports torch) and its launcher (parent side, no torch).

Import :mod:`benchd.runner.launch` from the daemon; every other module here imports torch and runs only
inside the worker process started by ``python -m benchd.runner``.
"""
