"""How fast can an MNIST epoch be on this CPU (issue 17's 5-second target)? Training img/s of the
MNIST speed-run net (airbench_mnist) at batch 512 for narrower widths, contiguous and channels_last, in
fp32 (the preset's precision), and the seconds one 60,000-image epoch of steps alone would take.

    .venv/bin/python benchmarks/mnist_step_rate.py
"""

from __future__ import annotations

import time

import torch

from imgcls.bench.roofline import processor_name
from imgcls.transfer import create_model

WIDTHS = ((24, 48, 64), (16, 32, 48), (12, 24, 32), (8, 16, 32))


def images_per_second(
    widths: tuple[int, int, int], channels_last: bool, batch: int = 512, steps: int = 10
) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model("airbench_mnist", widths=widths).train().to(memory_format=fmt)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    torch.manual_seed(0)
    print(f"{processor_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, fp32, batch 512")
    print("| widths | layout | train img/s | one epoch of steps, s |")
    print("| --- | --- | --- | --- |")
    for widths in WIDTHS:
        for cl in (False, True):
            rate = images_per_second(widths, cl)
            layout = "channels_last" if cl else "contiguous"
            print(
                f"| {'/'.join(map(str, widths))} | {layout} | {rate:,.0f} | {60000 / rate:.1f} |", flush=True
            )


if __name__ == "__main__":
    main()
