"""The daemon, part by part; only :class:`~benchd.service.app.BenchdApp` knows them all.

Wiring (:mod:`~benchd.service.app`), registry polling (:mod:`~benchd.service.scheduler`), device slots
(:mod:`~benchd.service.slots`), the HTTP API (:mod:`~benchd.service.api`), verdict-making
(:mod:`~benchd.service.verdicts`) and the exporter's snapshots (:mod:`~benchd.service.snapshots`). Each part
takes what it uses as arguments.
"""
