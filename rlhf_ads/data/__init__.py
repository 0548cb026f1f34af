"""Data: formats, validation, and brief -> prompt rendering."""

from rlhf_ads.data.briefs import Brief, brief_from_row, brief_messages, render_prompt
from rlhf_ads.data.loading import data_options, load_briefs, load_rows
from rlhf_ads.data.validation import KINDS, Problem, guess_kind

__all__ = ["Brief", "brief_from_row", "brief_messages", "render_prompt", "data_options", "load_briefs", "load_rows", "KINDS", "Problem",
           "guess_kind"]
