"""benchd's version, in a module of its own so that parts of benchd can name it without importing the root."""

__version__ = "0.1.0"
