"""Media types the registry code reads and writes (FORMATS.md §3, §4.1)."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCTET_STREAM = "application/octet-stream"

MANIFEST_TYPES: tuple[str, ...] = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES: tuple[str, ...] = (OCI_MANIFEST, DOCKER_MANIFEST)

SIF_CONFIG = "application/vnd.sylabs.sif.config.v1+json"
SIF_LAYER = "application/vnd.sylabs.sif.layer.v1.sif"
# Singularity < 3.7 wrote this misspelt type; pulls still accept it.
SIF_LAYER_LEGACY = "appliciation/vnd.sylabs.sif.layer.tar"
SIF_LAYER_TYPES: tuple[str, ...] = (SIF_LAYER, SIF_LAYER_LEGACY)

TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
REF_NAME = "org.opencontainers.image.ref.name"
