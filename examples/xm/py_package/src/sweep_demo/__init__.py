"""A tiny program to sweep: prints its flags and a loss computed from them."""
