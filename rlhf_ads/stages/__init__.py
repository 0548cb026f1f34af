"""Stages: each reads its config and the previous stage's output folder, and writes its own folder."""
