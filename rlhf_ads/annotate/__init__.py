"""The designer feedback loop (`rlhf-ads annotate ...`): candidate ads from our checkpoints or a team's file
(`candidates`), designers and their labels in SQLite with WAL (`store`), which pair a designer sees next
(`queue`), the web app (`app`, `page`), the reward model's view of a pair (`scoring`), the preference file the
reward stage reads (`export`) and agreement statistics (`stats`). Only `rlhf_ads.cli` imports this package.
"""
