"""Vision models: what a run with every stage captured costs against a plain forward pass (the explorer's build),
and what a middle-stage channel click (a rerun from that stage) costs against a full forward pass.

Models: the pretrained MNIST CNN (digit-recognizer-py), the shipped MNIST ViT, and a random-initialised
ResNet-50-shaped network (transformers' ResNet, 224x224, batch 1) where the convolutions, not Python, dominate.
Median of ``--repeat`` timings after a warm-up, one thread. Run by hand:

    python bench/bench_vision.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import repwidget as rw
from repwidget.demo.digits import digit_cnn, mnist_digits, normalise


def median_seconds(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(label: str, model, image: torch.Tensor, repeat: int) -> None:
    net = model.hf
    x = model.to_pixels(image)

    def plain():
        with torch.inference_mode():
            net(pixel_values=x) if hasattr(net, "config") else net(x)

    base = model.run(x)
    layer = model.n_layers // 2
    click = rw.Ablate(layer, channel=0) if model.kind == "cnn" else rw.Ablate(layer, head=0)
    forward = median_seconds(plain, repeat)
    build = median_seconds(lambda: model.run(x), repeat)
    rerun = median_seconds(lambda: base.rerun(click), repeat)
    full = median_seconds(lambda: model.run(x, click), repeat)
    print(
        f"| {label} | {model.n_layers} | {forward * 1e3:.2f} ms | {build * 1e3:.2f} ms ({build / forward:.2f}x) "
        f"| {click!r} | {rerun * 1e3:.2f} ms ({rerun / forward:.2f}x) | {full * 1e3:.2f} ms ({full / forward:.2f}x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers as tf

    digit = mnist_digits("test")[0][0]
    print("| model | stages | plain forward | run, every stage captured | click | rerun from it | full run with it |")
    print("|---|---:|---:|---:|---|---:|---:|")
    cnn = rw.Model(digit_cnn(), input_shape=(1, 28, 28))
    bench("MNIST CNN (3 conv blocks)", cnn, normalise(digit[None])[0], args.repeat)
    bench("MNIST ViT (shipped)", rw.demo.vision_model(), normalise(digit[None])[0], args.repeat)
    torch.manual_seed(0)
    resnet = tf.ResNetForImageClassification(tf.ResNetConfig(num_labels=1000)).eval()  # ResNet-50's shape
    bench("ResNet-50 shape, 224x224", rw.Model(resnet), torch.randn(3, 224, 224), max(5, args.repeat // 5))


if __name__ == "__main__":
    main()
