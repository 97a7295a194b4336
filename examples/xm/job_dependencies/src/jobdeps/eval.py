"""Evaluate: ``python -m jobdeps.eval --input_file=F``: reads what train wrote (it fails if
the file is missing: it runs only after its train unit succeeded)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Print the mean of the result; exit 0."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--input_file", default="result.json")
    args = parser.parse_args(argv)
    data = json.loads(Path(args.input_file).read_text())
    result = data["result"]
    print(f"seed {data['seed']}: received {len(result)} values, mean {sum(result) / len(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
