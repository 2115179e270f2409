"""Prompt servers written the way common tutorials write them: bad examples on purpose, kept out of examples/."""
