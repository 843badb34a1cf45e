"""The package version, in a module of its own: the engine writes it into every run without
importing the package's public API (which would import the engine back)."""

__version__ = "0.1.0"
