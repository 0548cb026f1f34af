"""Ad linting: the platform and editorial-policy rules (`rules`), keyword matching (`keywords`), and
checking a file of ads (`files`, `rlhf-ads lint`)."""

from rlhf_ads.lint.files import lint_file
from rlhf_ads.lint.keywords import ad_words, fold_plural, keywords_present, term_pattern
from rlhf_ads.lint.rules import RULES, PolicyContext, Rule, Violation, context_for, lint

__all__ = ["RULES", "PolicyContext", "Rule", "Violation", "ad_words", "context_for", "fold_plural", "keywords_present",
           "lint", "lint_file", "term_pattern"]
