"""The package version (one place: the package, the metadata of run folders and the CLI read it)."""

__version__ = "0.1.0"
