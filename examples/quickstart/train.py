"""A stand-in training script: reads its hyper-parameters from argv, "trains", reports."""

import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--batch_size", type=int, required=True)
parser.add_argument("--steps", type=int, default=5)
args = parser.parse_args()

loss = 1.0
for step in range(args.steps):
    loss *= 1 - args.lr
    print(f"step {step} loss {loss:.4f}", flush=True)
    time.sleep(0.1)
print(
    f"done: lr={args.lr} batch_size={args.batch_size} final_loss={loss:.4f} "
    f"(work unit {os.environ.get('LXR_WORK_UNIT')}, attempt {os.environ.get('LXR_ATTEMPT')})"
)
