"""Train, then evaluate (the programs of the job-dependencies example)."""
