"""The real small test model (SmolLM2-135M-Instruct, built from a PyPI wheel, cached).

Import from here in fixtures; the builder module is imported lazily so
``python -m tests.model.build_test_model`` runs without a double import.
"""

from __future__ import annotations

from pathlib import Path


def ensure_test_model() -> Path:
    """Return the cached SmolLM2-135M-Instruct safetensors directory, building it once."""
    from tests.model.build_test_model import ensure_test_model as build

    return build()


def ensure_test_model_tarball() -> Path:
    """Return ``smollm2-135m-instruct.tar.gz`` (model files at the archive root), packing it
    once; ``<path>.sha256`` holds its digest in ``sha256sum`` format."""
    from tests.model.build_test_model import ensure_test_model_tarball as pack

    return pack()


__all__ = ["ensure_test_model", "ensure_test_model_tarball"]
