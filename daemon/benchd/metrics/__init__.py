"""benchd's observability surface: metric names, collectors, the cached /metrics body, the HTTP server.

Nothing here registers a metric or starts a server at import: ``app.py`` builds one ``CollectorRegistry``,
a :class:`~benchd.metrics.cache.ResultsCache`, a :class:`~benchd.metrics.cache.MetricsExporter` and one
:class:`~benchd.metrics.server.HTTPService`, and passes them where they are needed.
"""

from __future__ import annotations
