"""Next-token choice: greedy, nucleus cut-off, seeded reproducibility."""

from __future__ import annotations

import torch

from vastllm.model_api.sampling import next_token

LOGITS = torch.tensor([0.1, 3.0, 2.9, -1.0, 0.0])


def test_temperature_zero_is_argmax() -> None:
    assert next_token(LOGITS, 0.0, 1.0) == 1


def test_tiny_top_p_keeps_only_the_best_token() -> None:
    g = torch.Generator().manual_seed(0)
    assert {next_token(LOGITS, 2.0, 0.01, g) for _ in range(50)} == {1}


def test_top_p_keeps_the_nucleus() -> None:
    g = torch.Generator().manual_seed(0)
    # tokens 1 and 2 hold ~93% of the mass at temperature 1: a 0.9 nucleus is exactly them
    assert {next_token(LOGITS, 1.0, 0.9, g) for _ in range(200)} == {1, 2}


def test_full_distribution_reaches_every_token() -> None:
    g = torch.Generator().manual_seed(0)
    flat = torch.zeros(4)
    assert {next_token(flat, 1.0, 1.0, g) for _ in range(400)} == {0, 1, 2, 3}


def test_same_seed_same_draws() -> None:
    def draws(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        return [next_token(torch.zeros(50), 1.0, 1.0, g) for _ in range(20)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
