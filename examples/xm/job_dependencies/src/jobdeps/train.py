"""Train (pretend): ``python -m jobdeps.train --output_file=F --seed=S``: writes 32 numbers
drawn with seed ``S`` to ``F`` (JSON), after ``--sleep`` seconds."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Write the result file; exit 0."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_file", default="result.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args(argv)
    time.sleep(args.sleep)
    rng = random.Random(args.seed)
    out = Path(args.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seed": args.seed, "result": [rng.random() for _ in range(32)]}))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
