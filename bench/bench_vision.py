"""Vision models: what a run with every stage captured costs against a plain forward pass (the explorer's build),
and what a middle-stage channel click (a rerun from that stage) costs against a full forward pass. Then the image
explorer itself: ``rw.explore(model, image)`` (the widget, its session and runs) against a plain forward pass, and
a middle-stage click as the kernel answers it (the ``set`` command with the classes riding along), alone and with
the requests the views make after it (every stage's thumbnails, the enlarged channel).

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


def bench_explorer(label: str, model, image: torch.Tensor, repeat: int) -> None:
    """The explorer's build and a middle-stage click in the kernel, against a plain forward pass; the three timed
    in turn, round after round (a loaded machine's drift falls on all of them), medians of ``repeat`` rounds."""
    net = model.hf
    x = model.to_pixels(image)
    layer = model.n_layers // 2
    target = {"channel": 0} if model.kind == "cnn" else {"head": 0}
    ex = rw.explore(model, x)
    seq = iter(range(10**9))

    def plain():
        with torch.inference_mode():
            net(pixel_values=x) if hasattr(net, "config") else net(x)

    def command(interventions: list) -> dict:
        return {"type": "set", "id": 1, "view": "bench", "seq": next(seq), "interventions": interventions}

    def click(refetch: bool) -> None:
        ablate = {"type": "ablate", "layer": layer, "mode": "zero", **target}
        ex.session.handle({**command([ablate]), "then": {"what": "classes"}})
        if refetch and model.kind == "cnn":  # what the views ask for after it: every stage's maps, the enlarged one
            for stage in range(model.n_layers):
                ex.session.handle({"type": "get", "id": 2, "what": "feature_maps", "layer": stage, "start": 0})
            ex.session.handle({"type": "get", "id": 3, "what": "channel_map", "layer": layer, "channel": 0})

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    rounds = []
    for _ in range(repeat + 1):
        row = [timed(plain), timed(lambda: rw.explore(model, x))]
        for refetch in (False, True):
            ex.session.handle(command([]))  # restored, untimed
            row.append(timed(lambda refetch=refetch: click(refetch)))
        rounds.append(row)
    forward, build, alone, views = (statistics.median(column) for column in zip(*rounds[1:], strict=True))
    print(
        f"| {label} | {forward * 1e3:.2f} ms | {build * 1e3:.2f} ms ({build / forward:.2f}x) | stage {layer} "
        f"| {alone * 1e3:.2f} ms ({alone / forward:.2f}x) | {views * 1e3:.2f} ms ({views / forward:.2f}x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--explorer", action="store_true", help="only the explorer's table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers as tf

    digit = mnist_digits("test")[0][0]
    cnn = rw.Model(digit_cnn(), input_shape=(1, 28, 28))
    torch.manual_seed(0)
    resnet = rw.Model(tf.ResNetForImageClassification(tf.ResNetConfig(num_labels=1000)).eval())  # ResNet-50's shape
    photo = torch.randn(3, 224, 224)
    if not args.explorer:
        print("| model | stages | plain forward | run, every stage captured | click | rerun from it ", end="")
        print("| full run with it |")
        print("|---|---:|---:|---:|---|---:|---:|")
        bench("MNIST CNN (3 conv blocks)", cnn, normalise(digit[None])[0], args.repeat)
        bench("MNIST ViT (shipped)", rw.demo.vision_model(), normalise(digit[None])[0], args.repeat)
        bench("ResNet-50 shape, 224x224", resnet, photo, max(5, args.repeat // 5))
    print("\n| model (explorer) | plain forward | rw.explore | click at | its command | with the views' requests |")
    print("|---|---:|---:|---|---:|---:|")
    bench_explorer("MNIST CNN", cnn, normalise(digit[None])[0], args.repeat)
    bench_explorer("MNIST ViT", rw.demo.vision_model(), normalise(digit[None])[0], args.repeat)
    bench_explorer("ResNet-50 shape, 224x224", resnet, photo, max(5, args.repeat // 5))


if __name__ == "__main__":
    main()
