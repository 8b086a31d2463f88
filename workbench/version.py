"""The workbench's version (its own module, so provenance code can read it without importing the package)."""

VERSION = "0.1.0"
