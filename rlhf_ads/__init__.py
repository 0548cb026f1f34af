"""rlhf-ads: train language models to write ad creatives with RLHF (SFT -> reward model -> PPO)."""

__version__ = "0.1.0"
