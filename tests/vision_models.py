"""Tiny random-initialised image classifiers for the vision tests: transformers' pure-torch CNNs and ViTs (torchvision
does not import beside this torch), a hand-written VGG-style nn.Sequential; the pretrained digit CNN is separate."""

from __future__ import annotations

import torch
from torch import nn

CNNS = ("resnet", "mobilenet_v2", "efficientnet", "convnext", "regnet", "vgg")
VITS = ("vit", "deit")


def vgg(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 5),
    ).eval()  # fmt: skip


def build(name: str, seed: int = 0) -> nn.Module:
    """A tiny random-initialised classifier (5 classes; a ViT 10) in eval mode; ``vgg`` takes [3, 16, 16] images."""
    import transformers as tf

    if name == "vgg":
        return vgg(seed)
    torch.manual_seed(seed)
    small = {"num_labels": 5}
    model = {
        "resnet": lambda: tf.ResNetForImageClassification(
            tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 2], layer_type="basic", **small)
        ),
        "mobilenet_v2": lambda: tf.MobileNetV2ForImageClassification(
            tf.MobileNetV2Config(image_size=32, depth_multiplier=0.25, **small)
        ),
        "efficientnet": lambda: tf.EfficientNetForImageClassification(
            tf.EfficientNetConfig(image_size=32, width_coefficient=0.25, depth_coefficient=0.3, hidden_dim=320, **small)
        ),
        "convnext": lambda: tf.ConvNextForImageClassification(
            tf.ConvNextConfig(image_size=32, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, **small)
        ),
        "regnet": lambda: tf.RegNetForImageClassification(
            tf.RegNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=4, **small)
        ),
        "vit": lambda: tf.ViTForImageClassification(tf.ViTConfig(**_vit_sizes(1))),
        "deit": lambda: tf.DeiTForImageClassification(tf.DeiTConfig(**_vit_sizes(3))),
    }[name]()
    with torch.no_grad():  # torch's default init (signals that survive every stage); batch-norm statistics that matter
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and name not in VITS:
                module.reset_parameters()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _vit_sizes(channels: int) -> dict:
    return {
        "image_size": 28, "patch_size": 7, "num_channels": channels, "hidden_size": 32, "num_hidden_layers": 3,
        "num_attention_heads": 4, "intermediate_size": 64, "num_labels": 10,
    }  # fmt: skip
