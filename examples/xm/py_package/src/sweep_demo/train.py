"""Train (pretend): ``python -m sweep_demo.train --lr=0.1 --seed=1``; exits 0, or 3 with --fail."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, print a fake loss, and exit 0 (or 3 when asked to fail)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=None)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--nofail", dest="fail", action="store_false")
    parser.add_argument("--sleep", type=float, default=0.0)
    args, rest = parser.parse_known_args(argv)
    if args.sleep:
        import time

        time.sleep(args.sleep)
    config = open(args.config).read().strip() if args.config else ""
    loss = (args.lr - 0.01) ** 2 + args.seed * 1e-3
    print(
        f"lr={args.lr} seed={args.seed} loss={loss:.6f} task={os.environ.get('TASK', '')}"
        f" config={config!r} rest={rest}"
    )
    return 3 if args.fail else 0


if __name__ == "__main__":
    sys.exit(main())
