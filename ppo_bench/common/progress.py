"""A progress bar with steps/s and the latest return on a terminal; silent in CI and in pipes."""

from __future__ import annotations

import math
import os
import sys


class _Quiet:
    def update(self, n: int, **postfix) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar:
    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", unit_scale=True, dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int, sps: float = math.nan, ret: float = math.nan) -> None:
        self.bar.set_postfix_str(f"sps={sps:,.0f} return={ret:.1f}", refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def make_progress(mode: str, total: int, desc: str):
    show = mode == "always" or (mode == "auto" and interactive())
    return _Bar(total, desc) if show else _Quiet()
