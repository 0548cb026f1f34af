"""The rewards shipped in reward_models/, by the names recipes use. This table is the one list: reward
resolution, the recipe's help text and the README's table (`python -m rlhf_ads.rewards.registry` prints it;
a test checks the README holds it) all read it. Adding a shipped reward: write it in reward_models/, add a
row here, paste the printed table into the README."""

from __future__ import annotations

from typing import NamedTuple


class ShippedReward(NamedTuple):
    target: str  # "module:callable", imported on first use
    summary: str  # what it scores, in one line


SHIPPED: dict[str, ShippedReward] = {
    "length_limit": ShippedReward("reward_models.platform:length_limit",
                                  "0 within the platform field's character limit, a penalty over it"),
    "length_fit": ShippedReward("reward_models.platform:length_fit",
                                "soft fit in [-1, 1]: 1 from 60% to 100% of the limit, less when shorter or over"),
    "ad_policy": ShippedReward("reward_models.policy:ad_policy",
                               "minus a penalty per editorial-policy violation of the platform (rlhf_ads.lint)"),
    "keyword_coverage": ShippedReward("reward_models.copy_quality:keyword_coverage",
                                      "share of the brief's keywords the ad contains"),
    "call_to_action": ShippedReward("reward_models.copy_quality:call_to_action",
                                    "1 when the ad has an imperative call to action, else 0"),
    "brief_facts": ShippedReward("reward_models.copy_quality:brief_facts",
                                 "figures and words taken from the brief's landing page, minus figures it does not state"),
    "brand_voice": ShippedReward("reward_models.copy_quality:BrandVoice",
                                 "a bonus per preferred brand term, a penalty per avoided one"),
    "tone_voice": ShippedReward("reward_models.tone:ToneVoice",
                                "1 when the ad uses a marker word of its brief's tone (a lexicon given or learned "
                                "from approved ads), less for another tone's"),
    "repetition": ShippedReward("reward_models.copy_quality:repetition",
                                "minus the share of repeated n-grams and repeated words"),
    "batch_diversity": ShippedReward("reward_models.copy_quality:batch_diversity",
                                     "1 minus the ad's highest n-gram overlap with another ad of the batch"),
    "recent_diversity": ShippedReward("reward_models.copy_quality:RecentDiversity",
                                      "1 minus the ad's highest n-gram overlap with the batch's and PPO's last "
                                      "`window` ads (`score: shared`: minus how widely the recent ads share each "
                                      "of its n-grams)"),
    "brief_specificity": ShippedReward("reward_models.specificity:BriefSpecificity",
                                       "how much likelier the SFT model finds the ad under its own brief than under "
                                       "the product's other briefs (nats): what only its brief asks for"),
    "reward_model": ShippedReward("reward_models.learned:LearnedReward",
                                  "the score of a trained reward model folder (`rlhf-ads reward`)"),
    "click_through": ShippedReward("reward_models.learned:ClickThroughReward",
                                   "the predicted click-through rate of a trained click model (`reward.kind=ctr`)"),
}


def names_help() -> str:
    """The shipped names, for the recipe's help text."""
    return ", ".join(SHIPPED)


def markdown_table() -> str:
    """The README's table of shipped rewards."""
    rows = [f"| `{name}` | {entry.summary} | `{entry.target}` |" for name, entry in SHIPPED.items()]
    return "\n".join(["| name | what it scores | where |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(markdown_table())
