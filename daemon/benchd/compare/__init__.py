"""The A/B comparison of a candidate version with its baseline.

* :mod:`benchd.compare.plan`: what a batch runs (data only; the torch worker reads it).
* :mod:`benchd.compare.batch`: the bookkeeping of one batch: trials seen, the running decision, its inputs.
* :mod:`benchd.compare.run`: :func:`~benchd.compare.run.compare`, the parent side that starts the worker.

Nothing is imported here, so the worker can import the plan without the orchestrator.
"""
