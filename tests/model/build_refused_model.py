"""A model vLLM refuses and transformers serves: a tiny GPT-Neo with random weights.

vLLM 0.32 has no GPT-Neo implementation (``Model architectures ['GPTNeoForCausalLM'] are not
supported for now``, recorded in tests/fixtures/vllm/), while transformers loads it; it carries
the SmolLM2 test model's tokenizer and chat template, so the model API can answer chat requests
(with random text). The vLLM Molecule scenario serves it to prove the engine fallback.

Built once per recipe into ``<cache>/models/gptneo-tiny-<key>/``; run
``.venv/bin/python -m tests.model.build_refused_model`` to print the directory.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from tests.model.build_test_model import cache_root, ensure_test_model

NAME = "gptneo-tiny"
RECIPE = "gptneo hidden=64 layers=2 heads=4 positions=2048 seed=0 tokenizer=smollm2 v1"


def refused_model_dir() -> Path:
    key = hashlib.sha256(RECIPE.encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{NAME}-{key}"


def ensure_refused_model() -> Path:
    """Return the model directory, building it when missing (a few seconds, 16 MB)."""
    final = refused_model_dir()
    if final.is_dir():
        return final
    import torch  # noqa: PLC0415 (heavy; only when building)
    from transformers import AutoTokenizer, GPTNeoConfig, GPTNeoForCausalLM  # noqa: PLC0415

    tokenizer = AutoTokenizer.from_pretrained(ensure_test_model(), local_files_only=True)
    config = GPTNeoConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_layers=2, num_heads=4,
        attention_types=[[["global"], 2]], max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = GPTNeoForCausalLM(config)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{NAME}-"))
    try:
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        work.chmod(0o755)
        for f in work.iterdir():
            f.chmod(0o644)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


if __name__ == "__main__":
    print(ensure_refused_model())
