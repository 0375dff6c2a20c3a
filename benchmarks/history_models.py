"""User models for `bench_history.py`: six small CNNs (a stem, then 3x3 conv blocks at 32x32),
each its own width, ten blocks each but net_e's eight. With HISTORY_SLOWER=1 in the
environment, net_e gets a ninth block: 12.5% more block work, which the runs measure as about
10% (the history of 10 -> 11 blocks saw +6-8% where one process saw +8-10%; `bench_history.py
step` measures this one both ways), a real slowdown on that model's two rows only: what a
change to a model under review looks like in a history. ``net_e_slower`` is the slowed net_e
whatever the environment says, for measuring the step in one run."""

import os

from torch import nn

WIDTHS = {"net_a": 8, "net_b": 12, "net_c": 16, "net_d": 20, "net_e": 24, "net_f": 28}
SLOWED = ("net_e",)
BLOCKS = {"net_e": 8}  # the others: DEFAULT_BLOCKS
DEFAULT_BLOCKS = 10


def blocks_of(name: str, slower: bool = False) -> int:
    return BLOCKS.get(name, DEFAULT_BLOCKS) + (1 if slower and name in SLOWED else 0)


def _stack(name: str, slower: bool | None = None) -> nn.Module:
    if slower is None:
        slower = os.environ.get("HISTORY_SLOWER") == "1"
    return stack(WIDTHS[name], blocks_of(name, slower))


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


def net_e_slower() -> nn.Module:
    return _stack("net_e", slower=True)
