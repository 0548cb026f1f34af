"""Ad-domain reward functions users plug into recipes, or copy and adapt.

Each is a plain callable `fn(completions, prompts, **columns) -> list[float | None]`.
"""
