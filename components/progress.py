"""A tqdm progress bar over frames showing frames/s, the phase and the current returns."""

from __future__ import annotations

import math


class Progress:
    """A no-op when ``enabled`` is false."""

    def __init__(self, enabled: bool, total: int, initial: int):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="frames", unit_scale=True, dynamic_ncols=True)

    def update(self, n, row):
        if self.bar is not None:
            self.bar.update(n)
            post = {"phase": row["phase"], "train": f"{row['train_return']:.3g}"}
            if not math.isnan(row.get("eval_return", math.nan)):
                post["eval"] = f"{row['eval_return']:.3g}"
            self.bar.set_postfix(post, refresh=False)

    def notice(self, message: str):
        """One line for the user (stderr; above the bar when there is one)."""
        import sys

        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
