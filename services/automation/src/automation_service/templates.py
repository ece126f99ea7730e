"""Every notification's words, in one place: a text and an HTML template per kind, rendered
with autoescaping in HTML (a name or a reason is the user's text, never markup)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from jinja2 import Environment, StrictUndefined

HTML: Final = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
# Plain text is not markup: nothing to escape (the HTML part is the one rendered as markup).
TEXT: Final = Environment(
    autoescape=False,  # noqa: S701
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

OWNER_CHANGED_SUBJECT: Final = TEXT.from_string(
    "{{ record_kind | capitalize }} handed to {{ new_owner }}"
)
OWNER_CHANGED_TEXT: Final = TEXT.from_string(
    """{{ actor }} made {{ new_owner }} the owner of this {{ record_kind }}\
{% if previous_owner %} (it was {{ previous_owner }}'s){% endif %}.
{% if reason %}
Reason: {{ reason }}
{% endif %}
Open it: {{ url }}
"""
)
OWNER_CHANGED_HTML: Final = HTML.from_string(
    """<p>{{ actor }} made <strong>{{ new_owner }}</strong> the owner of this {{ record_kind }}\
{% if previous_owner %} (it was {{ previous_owner }}'s){% endif %}.</p>
{% if reason %}<p>Reason: {{ reason }}</p>
{% endif %}<p><a href="{{ url }}">Open the {{ record_kind }}</a></p>
"""
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def owner_changed(
    *,
    record_kind: str,
    actor: str,
    new_owner: str,
    previous_owner: str | None,
    reason: str | None,
    url: str,
) -> Rendered:
    values = {
        "record_kind": record_kind,
        "actor": actor,
        "new_owner": new_owner,
        "previous_owner": previous_owner,
        "reason": reason,
        "url": url,
    }
    subject = " ".join(OWNER_CHANGED_SUBJECT.render(values).split())[:998]
    return Rendered(subject, OWNER_CHANGED_TEXT.render(values), OWNER_CHANGED_HTML.render(values))


SLA_SUBJECT: Final = TEXT.from_string(
    "{% if breached %}SLA breached{% else %}SLA due soon{% endif %}: {{ title }}"
)
SLA_TEXT: Final = TEXT.from_string(
    """{% if breached %}The {{ stage }} of the lead "{{ title }}" was due at {{ due }} and has not \
happened.{% else %}The {{ stage }} of the lead "{{ title }}" is due at {{ due }}.{% endif %}
Priority: {{ priority }}.

Open it: {{ url }}
"""
)
SLA_HTML: Final = HTML.from_string(
    """<p>{% if breached %}The {{ stage }} of the lead <strong>{{ title }}</strong> was due at \
{{ due }} and has not happened.{% else %}The {{ stage }} of the lead <strong>{{ title }}</strong> \
is due at {{ due }}.{% endif %}</p>
<p>Priority: {{ priority }}.</p>
<p><a href="{{ url }}">Open the lead</a></p>
"""
)


def sla_alert(
    *, breached: bool, title: str, stage: str, due: str, priority: str, url: str
) -> Rendered:
    """A lead's SLA warning or breach, to its owner and its team's managers."""
    values = {
        "breached": breached,
        "title": title,
        "stage": stage,
        "due": due,
        "priority": priority,
        "url": url,
    }
    subject = " ".join(SLA_SUBJECT.render(values).split())[:998]
    return Rendered(subject, SLA_TEXT.render(values), SLA_HTML.render(values))
