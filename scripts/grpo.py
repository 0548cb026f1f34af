"""accelerate launch scripts/grpo.py --config recipes/quickstart.yaml [key=value ...] [--resume]"""

from _launch import launch

if __name__ == "__main__":
    launch("grpo")
