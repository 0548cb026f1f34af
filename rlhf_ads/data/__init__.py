"""Data: formats, validation, and brief -> prompt rendering."""

from rlhf_ads.data.briefs import Brief, brief_from_row, brief_messages, render_prompt
from rlhf_ads.data.loading import load_briefs, load_rows

__all__ = ["Brief", "brief_from_row", "brief_messages", "render_prompt", "load_briefs", "load_rows"]
