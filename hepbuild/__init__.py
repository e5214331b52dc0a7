"""hepbuild: recipes to OCI images, SIF files and sandboxes for HEP computing centres."""

__version__ = "0.1.0"
