"""Each world object's colour, shape, position and motion as class labels, and a linear head's loss.

Training-only supervision parsed from the world's captions: `attribute_labels` turns captions into
per-object class indices, `attribute_head` is the linear readout from an embedding, and
`attribute_loss` its summed cross-entropy. Optimus uses it to shape its latent, bridge alignment
to make the shared-space tokens carry what contrastive loss alone leaves out (docs/nano.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codi.nano import world

#: Each object's attributes, as named in `world.ObjectAttributes`, in the labels' column order.
ATTRIBUTES = ("colour", "shape", "position", "motion")
#: The values of each attribute, in the attribute head's class order.
ATTRIBUTE_VALUES = (tuple(world.COLOURS), world.SHAPES, world.POSITIONS, world.MOTIONS)
#: Objects per scene the attribute head reads (a missing second object is ignored).
MAX_OBJECTS = 2


def attribute_labels(captions: list[str]) -> torch.Tensor:
    """(B, MAX_OBJECTS × 4) class indices of each object's attributes; -100 where no object."""
    labels = torch.full((len(captions), MAX_OBJECTS * len(ATTRIBUTES)), -100, dtype=torch.long)
    for row, caption in enumerate(captions):
        for index, attributes in enumerate(world.parse_caption(caption)[:MAX_OBJECTS]):
            for column, (name, values) in enumerate(zip(ATTRIBUTES, ATTRIBUTE_VALUES)):
                labels[row, index * len(ATTRIBUTES) + column] = values.index(
                    getattr(attributes, name))
    return labels


def attribute_head(latent_size: int) -> nn.Linear:
    """The training-only head: latent → logits of every object's every attribute, concatenated."""
    return nn.Linear(latent_size, MAX_OBJECTS * sum(len(v) for v in ATTRIBUTE_VALUES))


def attribute_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each (object, attribute) slice of the head's logits, summed."""
    total, start = logits.new_zeros(()), 0
    for column in range(labels.shape[1]):
        width = len(ATTRIBUTE_VALUES[column % len(ATTRIBUTES)])
        target = labels[:, column]
        if (target >= 0).any():
            total = total + F.cross_entropy(logits[:, start:start + width], target,
                                            ignore_index=-100)
        start += width
    return total


def visible_labels(labels: torch.Tensor, attributes: tuple[str, ...]) -> torch.Tensor:
    """`attribute_labels` with every attribute not in `attributes` set to -100 (ignored)."""
    hidden = [column for column in range(labels.shape[1])
              if ATTRIBUTES[column % len(ATTRIBUTES)] not in attributes]
    labels = labels.clone()
    labels[:, hidden] = -100
    return labels
