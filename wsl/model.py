"""The SANE-style weight-space autoencoder, in one file.

    tokens [N, T, W] --Linear--> [N, T, d] + position embeddings
        --transformer encoder--> --Linear--> latents z [N, T, latent]
    z --Linear--> [N, T, d] + position embeddings
        --transformer encoder--> --Linear--> tokens [N, T, W]

A model's embedding is the mean of its latent tokens ``[N, latent]``. The
projection head maps the flattened latents (or, with ``pooled_head``, the
embedding itself, so the contrastive loss shapes what the probe reads) to a
small space where the contrastive loss compares two views of the same model. Positions are the
(global token, layer, token-within-layer) triple of ``wsl.tokens``, each with
a learned table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class ModelConfig:
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    latent_dim: int = 32
    dropout: float = 0.0
    proj_dim: int = 30
    pooled_head: bool = True  # the contrastive head reads the embedding (mean of latent tokens); false: all tokens


class PositionEmbedding(nn.Module):
    """Sum of three learned tables indexed by ``positions [T, 3]``."""

    def __init__(self, sizes: tuple[int, int, int], d_model: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(s, d_model) for s in sizes)

    def forward(self, positions: Tensor) -> Tensor:  # [T, 3] -> [T, d]
        return sum(table(positions[:, i]) for i, table in enumerate(self.tables))


def _transformer(cfg: ModelConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        cfg.d_model, cfg.heads, 4 * cfg.d_model, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)


class Autoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig, token_width: int, num_tokens: int, max_positions: tuple[int, int, int]):
        super().__init__()
        self.cfg = cfg
        self.enc_in = nn.Linear(token_width, cfg.d_model)
        self.enc_pos = PositionEmbedding(max_positions, cfg.d_model)
        self.encoder = _transformer(cfg)
        self.enc_out = nn.Linear(cfg.d_model, cfg.latent_dim)
        self.dec_in = nn.Linear(cfg.latent_dim, cfg.d_model)
        self.dec_pos = PositionEmbedding(max_positions, cfg.d_model)
        self.decoder = _transformer(cfg)
        self.dec_out = nn.Linear(cfg.d_model, token_width)
        self.head = nn.Sequential(
            nn.Linear((1 if cfg.pooled_head else num_tokens) * cfg.latent_dim, 4 * cfg.proj_dim),
            nn.LayerNorm(4 * cfg.proj_dim),
            nn.ReLU(),
            nn.Linear(4 * cfg.proj_dim, cfg.proj_dim),
            nn.LayerNorm(cfg.proj_dim),
            nn.ReLU(),
        )

    def encode(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """tokens [N, T, W] -> latents [N, T, latent]."""
        return self.enc_out(self.encoder(self.enc_in(tokens) + self.enc_pos(positions)))

    def decode(self, z: Tensor, positions: Tensor) -> Tensor:
        """latents [N, T, latent] -> tokens [N, T, W]."""
        return self.dec_out(self.decoder(self.dec_in(z) + self.dec_pos(positions)))

    def project(self, z: Tensor) -> Tensor:
        """latents [N, T, latent] -> contrastive projection [N, proj_dim], from all tokens or their mean."""
        return self.head(self.embedding(z) if self.cfg.pooled_head else z.flatten(1))

    @staticmethod
    def embedding(z: Tensor) -> Tensor:
        """latents [N, T, latent] -> model embedding [N, latent]."""
        return z.mean(1)

    def forward(self, tokens: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Reconstruction [N, T, W] and latents [N, T, latent]."""
        z = self.encode(tokens, positions)
        return self.decode(z, positions), z


@torch.no_grad()
def encode_all(model: Autoencoder, tokens: Tensor, positions: Tensor, batch: int = 256) -> Tensor:
    """Embeddings ``[N, latent]`` of many models, in batches, in eval mode."""
    model.eval()
    return torch.cat(
        [model.embedding(model.encode(tokens[i : i + batch], positions)) for i in range(0, len(tokens), batch)]
    )
