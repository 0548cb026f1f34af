"""What a designer sees: the sign-in page and the comparison page (server-rendered HTML; every brief and ad text
HTML-escaped), and the same facts as JSON for the API: the brief, each ad's width as its platform counts it
against the limit, and the linter's findings. No model names: designers compare blind."""

from __future__ import annotations

from html import escape

from rlhf_ads.annotate.candidates import Candidate, prompt_row
from rlhf_ads.annotate.queue import Assignment, Progress
from rlhf_ads.data import row_context, row_target
from rlhf_ads.lint import context_for, lint
from rlhf_ads.platforms import platforms, text_width, width_for

MAX_REASON_CHARS = 500
KEYS = {"a": "1 or ←", "b": "2 or →", "tie": "3 or t", "unusable": "4 or u"}
BUTTONS = {"a": "A is better", "b": "B is better", "tie": "Tie", "unusable": "Both unusable"}

STYLE = """
body{font:16px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f3;color:#1d1d1b}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1d1d1b;color:#fff}
header form{margin-left:auto} main{max-width:1100px;margin:1.2em auto;padding:0 1em}
.brief,.ad{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin-bottom:1em}
.brief dt{font-weight:600;float:left;clear:left;width:9em} .brief dd{margin:0 0 .3em 9em;white-space:pre-wrap}
.ads{display:grid;grid-template-columns:1fr 1fr;gap:1em} .ad h2{margin:0 0 .4em}
.text{font-size:1.25em;white-space:pre-wrap;overflow-wrap:anywhere;margin:.3em 0 .6em}
.over{color:#b00020;font-weight:600} .ok{color:#2e7d32} .findings{margin:.3em 0;padding-left:1.2em;color:#7a4b00}
.choices{display:flex;gap:.6em;flex-wrap:wrap;margin:.8em 0} .choices button{font-size:1em;padding:.6em 1.1em}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 .3em;font-size:.85em;background:#fafafa}
textarea{width:100%;box-sizing:border-box} progress{width:12em} .error{color:#b00020}
"""

SCRIPT = """
(() => {
  const form = document.getElementById('label-form');
  if (!form) return;
  const reason = document.getElementById('reason');
  const keys = {'1': 'a', 'a': 'a', 'ArrowLeft': 'a', '2': 'b', 'b': 'b', 'ArrowRight': 'b',
                '3': 'tie', 't': 'tie', '4': 'unusable', 'u': 'unusable'};
  let sent = false;
  form.addEventListener('submit', (event) => { if (sent) event.preventDefault(); sent = true; });
  document.addEventListener('keydown', (event) => {
    if (event.target === reason) { if (event.key === 'Escape') reason.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === 'r') { event.preventDefault(); reason.focus(); return; }
    const choice = keys[event.key];
    if (!choice) return;
    event.preventDefault();
    form.requestSubmit(form.querySelector('button[value="' + choice + '"]'));
  });
})();
"""


def brief_view(brief: dict) -> dict:
    """The brief as shown: labelled fields (a plain prompt as one field), and the limit its ads are held to."""
    row = prompt_row(brief)
    platform, field, limit = row_target(row)
    spec = platforms()[platform] if platform else None
    if row.get("brief") is None:
        fields = [("Prompt", row_context(row))]
    else:
        b = row["brief"]
        fields = [(label, value) for label, value in (
            ("Product", b.product), ("Brand", b.brand), ("Category", b.category), ("Audience", b.audience),
            ("Tone", b.tone), ("Keywords", ", ".join(b.keywords)), ("Landing page", b.landing_page)) if value]
    target = None
    if spec is not None:
        wide = "; Chinese, Japanese and Korean characters count as two" if spec.double_width_counts_twice else ""
        target = f"{spec.display_name} {field.replace('_', ' ')}" + (f": at most {limit} characters{wide}" if limit else "")
    return {"fields": fields, "target": target, "limit": limit}


def ad_view(candidate: Candidate) -> dict:
    """One ad as shown: its text, its width as the platform counts it (characters without a platform), the limit,
    and the linter's findings (rule, detail, source)."""
    platform, field, limit = row_target(prompt_row(candidate.brief))
    width = width_for(candidate.text, platform) if platform else text_width(candidate.text, double_width_counts_twice=False)
    findings = [{"rule": v.rule, "detail": v.detail, "source": v.source}
                for v in lint(candidate.text, context_for(platform, field))]
    return {"text": candidate.text, "width": width, "limit": limit, "over_limit": limit is not None and width > limit,
            "findings": findings}


def _layout(title: str, body: str, nonce: str, header: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style nonce="{nonce}">{STYLE}</style>'
            f"</head><body>{header}<main>{body}</main><script nonce=\"{nonce}\">{SCRIPT}</script></body></html>")


def signin_page(nonce: str, error: str | None = None) -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (f"<h1>Sign in</h1>{message}<p>Paste the token <code>rlhf-ads annotate add-designer</code> printed for "
            'you.</p><form method="post" action="/signin"><input type="password" name="token" id="token" size="60" '
            'autocomplete="off" required autofocus> <button type="submit">Sign in</button></form>')
    return _layout("Sign in · rlhf-ads", body, nonce)


def message_page(nonce: str, title: str, message: str, link: tuple[str, str] = ("/label", "Back to labelling")) -> str:
    body = f'<h1>{escape(title)}</h1><p>{escape(message)}</p><p><a href="{escape(link[0])}">{escape(link[1])}</a></p>'
    return _layout(f"{title} · rlhf-ads", body, nonce)


def _header(designer: str, progress: Progress) -> str:
    return (f'<header><strong>rlhf-ads</strong><span>Signed in as {escape(designer)}</span>'
            f'<span id="progress">{progress.labelled} of {progress.goal} labelled '
            f'<progress max="{max(progress.goal, 1)}" value="{min(progress.labelled, max(progress.goal, 1))}"></progress>'
            f" · {progress.available} more pairs for you</span>"
            '<form method="post" action="/signout"><button type="submit">Sign out</button></form></header>')


def _ad_html(letter: str, view: dict) -> str:
    if view["limit"] is not None:
        mark = "over" if view["over_limit"] else "ok"
        width = f'<span class="{mark}">{view["width"]} of {view["limit"]} characters</span>'
    else:
        width = f"<span>{view['width']} characters (no platform limit)</span>"
    findings = ("".join(f"<li><strong>{escape(f['rule'])}</strong>: {escape(f['detail'])}</li>" for f in view["findings"])
                if view["findings"] else "")
    lint_html = f'<ul class="findings">{findings}</ul>' if findings else '<p class="ok">Linter: no findings</p>'
    return (f'<section class="ad" id="ad-{letter.lower()}"><h2>Ad {letter}</h2>'
            f'<p class="text">{escape(view["text"])}</p><p>{width}</p>{lint_html}</section>')


def label_page(nonce: str, designer: str, assignment: Assignment | None, progress: Progress, request_id: str) -> str:
    """The comparison page, or a thank-you when no pair is left for the designer."""
    header = _header(designer, progress)
    if assignment is None:
        body = "<h1>All done</h1><p>No pair is waiting for you. Thank you!</p>"
        return _layout("Done · rlhf-ads", body, nonce, header)
    brief = brief_view(assignment.left.brief)
    rows = "".join(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>" for label, value in brief["fields"])
    target = f"<dt>Ad for</dt><dd>{escape(brief['target'])}</dd>" if brief["target"] else ""
    buttons = "".join(f'<button type="submit" name="choice" value="{choice}">{escape(text)} <kbd>{escape(KEYS[choice])}'
                      "</kbd></button>" for choice, text in BUTTONS.items())
    body = (f'<section class="brief"><h1>Which ad answers this brief better?</h1><dl>{rows}{target}</dl></section>'
            f'<div class="ads">{_ad_html("A", ad_view(assignment.left))}{_ad_html("B", ad_view(assignment.right))}</div>'
            f'<form method="post" action="/label" id="label-form">'
            f'<input type="hidden" name="assignment_id" value="{escape(assignment.id)}">'
            f'<input type="hidden" name="request_id" value="{escape(request_id)}">'
            f'<label for="reason">Reason (optional, <kbd>r</kbd> to type, <kbd>Esc</kbd> to leave)</label>'
            f'<textarea id="reason" name="reason" rows="2" maxlength="{MAX_REASON_CHARS}"></textarea>'
            f'<div class="choices">{buttons}</div></form>'
            "<p>Keys: <kbd>1</kbd>/<kbd>←</kbd> A better, <kbd>2</kbd>/<kbd>→</kbd> B better, <kbd>3</kbd>/<kbd>t</kbd> "
            "tie, <kbd>4</kbd>/<kbd>u</kbd> both unusable.</p>")
    return _layout("Compare ads · rlhf-ads", body, nonce, header)
