"""User models for `bench_history.py`: six small CNNs (a stem, then ten 3x3 conv blocks at
32x32), each its own width. With HISTORY_SLOWER=1 in the environment, net_e gets an eleventh
block: 10% more conv work (the latency step it makes is measured by `bench_history.py step`),
a real slowdown on that model's two rows only: what a change to a model under review looks like
in a history."""

import os

from torch import nn

WIDTHS = {"net_a": 8, "net_b": 12, "net_c": 16, "net_d": 20, "net_e": 24, "net_f": 28}
SLOWED = ("net_e",)
BLOCKS = 10


def _stack(name: str) -> nn.Module:
    slower = name in SLOWED and os.environ.get("HISTORY_SLOWER") == "1"
    return stack(WIDTHS[name], BLOCKS + (1 if slower else 0))


def stack(width: int, blocks: int) -> nn.Module:
    """A stem (3 -> width), ``blocks`` 3x3 conv blocks at ``width``, a pooled linear head."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


def net_a() -> nn.Module:
    return _stack("net_a")


def net_b() -> nn.Module:
    return _stack("net_b")


def net_c() -> nn.Module:
    return _stack("net_c")


def net_d() -> nn.Module:
    return _stack("net_d")


def net_e() -> nn.Module:
    return _stack("net_e")


def net_f() -> nn.Module:
    return _stack("net_f")
