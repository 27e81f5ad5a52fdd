"""Build a Llama-shaped model with random weights (for throughput benchmarks, no download).

    python bench/build_random_llama.py --size 7b --out DIR [--tokenizer DIR]
                                       [--device cuda] [--dtype bfloat16] [--seed 0]

Decode speed does not depend on the weights, only on the shapes, so a model built from a
standard config with random weights measures what the real one would (generate it with
``ignore_eos`` / ``min_new_tokens``: random weights say EOS whenever they like). Sizes: ``tiny``
(a few MB, for smoke tests), ``1b`` / ``3b`` (Llama-3.2-1B / -3B shapes), ``7b`` / ``13b``
(Llama-2-7B / -13B), ``8b`` (Llama-3-8B).

The weights are initialised where they will run, in the target dtype (``torch.device`` context
and default dtype), so 7B takes seconds on a GPU rather than minutes of CPU init, then saved as
safetensors. The tokenizer is the one of ``--tokenizer DIR`` (e.g. the test model's; the vocab
then is that tokenizer's size), or else a byte-level BPE built here by ``tokenizers`` with the
size's standard vocab (every id decodes to text) and a ChatML chat template. ``DIR`` gets a
``random_llama.json`` stamp; a directory whose stamp matches is reused as it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
import sys
import time
from pathlib import Path
from typing import Any

# Llama-2 / Llama-3 shapes: hidden, intermediate, layers, heads, kv heads, vocab, rope theta, tie
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 8192,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
    },
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
    },
    "3b": {
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 28,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
    },
    "7b": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
    "8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
    },
    "13b": {
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_hidden_layers": 40,
        "num_attention_heads": 40,
        "num_key_value_heads": 40,
        "vocab_size": 32000,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
}
MAX_POSITIONS = 4096
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def synthetic_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE of exactly ``vocab_size`` ids, no training data, no download: the 256
    byte symbols, then letter pairs and triples (``Ġ`` is the space), then the specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    regular = vocab_size - len(SPECIALS)
    if regular < len(alphabet):
        raise SystemExit(f"vocab {vocab_size} is smaller than the byte alphabet")
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    letters = ["Ġ", *string.ascii_lowercase, *string.ascii_uppercase]
    pairs = [a + b for a in letters for b in letters]

    def add(left: str, right: str) -> bool:
        if len(vocab) >= regular:
            return False
        vocab[left + right] = len(vocab)
        merges.append((left, right))
        return True

    for p in pairs:
        if not add(p[0], p[1]):
            break
    for p in pairs:
        for b in letters:
            if not add(p, b):
                break
    if len(vocab) < regular:
        raise SystemExit(f"the synthetic tokenizer reaches {len(vocab)} ids, not {regular}")
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(SPECIALS)
    roles = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, **roles)
    fast.chat_template = CHATML
    return fast


def build(args: argparse.Namespace) -> Path:
    import torch  # noqa: PLC0415 - after the argument check: --help needs no torch
    from transformers import (  # noqa: PLC0415
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    out: Path = args.out.resolve()
    shape = dict(SIZES[args.size])
    stamp = {
        "size": args.size,
        "shape": shape,
        "dtype": args.dtype,
        "seed": args.seed,
        "tokenizer": str(args.tokenizer.resolve()) if args.tokenizer else "synthetic",
    }
    stamp_path = out / "random_llama.json"
    if (
        stamp_path.is_file()
        and (out / "config.json").is_file()
        and json.loads(stamp_path.read_text()) == stamp
    ):
        print(f"reusing {out} (same size, dtype, seed, tokenizer)", flush=True)
        return out
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    started = time.monotonic()
    if args.tokenizer:
        tokenizer: Any = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
        if not tokenizer.chat_template:
            tokenizer.chat_template = CHATML
        shape["vocab_size"] = len(tokenizer)
    else:
        tokenizer = synthetic_tokenizer(shape["vocab_size"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = LlamaConfig(
        **shape,
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        **ids,
    )
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(args.device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.to(dtype).eval()
    model.generation_config = GenerationConfig(**ids, do_sample=False)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"built {args.size}: {params / 1e6:,.1f} M parameters, {args.dtype}, on {args.device}, "
        f"{time.monotonic() - started:.1f} s; saving ...",
        flush=True,
    )
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, max_shard_size="5GB")
    tokenizer.save_pretrained(tmp)
    # older transformers / vLLM read rope_theta at the top level
    cfg = json.loads((tmp / "config.json").read_text())
    cfg.setdefault("rope_theta", shape["rope_theta"])
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (tmp / "random_llama.json").write_text(json.dumps(stamp, indent=2) + "\n")
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"saved {out} in {time.monotonic() - started:.1f} s in all", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--size", choices=sorted(SIZES), required=True)
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--tokenizer", type=Path, help="copy this directory's tokenizer")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(build(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
