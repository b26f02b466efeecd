"""End-to-end tests reuse the daemon process fixture."""

from tests.daemon.conftest import daemon_factory  # noqa: F401 - re-exported fixture
