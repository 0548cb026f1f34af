"""Data: formats, validation, and brief -> prompt rendering."""

from rlhf_ads.data.briefs import (SCORER_INPUT, Brief, brief_context, brief_from_row, brief_messages, message_text,
                                  rater_context, rater_mean_scores, render_prompt, render_row_prompt,
                                  representative_rows, reward_columns, row_completion, row_context, row_id, row_target,
                                  scorer_text, within_limit_shares, within_row_limit)
from rlhf_ads.data.loading import data_options, load_briefs, load_prompts, load_rows
from rlhf_ads.data.validation import KINDS, Problem, guess_kind

__all__ = ["SCORER_INPUT", "Brief", "brief_context", "brief_from_row", "brief_messages", "message_text",
           "render_prompt", "rater_context", "rater_mean_scores", "render_row_prompt", "representative_rows",
           "reward_columns", "row_completion", "row_context", "row_id", "row_target", "scorer_text", "data_options",
           "load_briefs", "load_prompts", "load_rows", "within_limit_shares", "within_row_limit", "KINDS", "Problem",
           "guess_kind"]
