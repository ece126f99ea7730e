"""The owner-change email's words: the HTML part escapes what users wrote, the text part keeps
it as written, and both name who did it, why, and where the record is."""

from automation_service.templates import owner_changed


def test_the_html_part_escapes_names_and_reasons_and_the_text_part_keeps_them() -> None:
    rendered = owner_changed(
        record_kind="deal",
        actor="Mia <script>",
        new_owner="Rita & Co",
        previous_owner="Sam",
        reason='Territory "north" <moves>',
        url="https://app.example/deals/d1?x=1&y=2",
    )
    assert rendered.subject == "Deal handed to Rita & Co"
    assert "Mia &lt;script&gt;" in rendered.html
    assert "<strong>Rita &amp; Co</strong>" in rendered.html
    assert "Territory &#34;north&#34; &lt;moves&gt;" in rendered.html
    assert 'href="https://app.example/deals/d1?x=1&amp;y=2"' in rendered.html
    assert "<script>" not in rendered.html
    assert rendered.text.startswith(
        "Mia <script> made Rita & Co the owner of this deal (it was Sam's)."
    )
    assert 'Reason: Territory "north" <moves>' in rendered.text
    assert "Open it: https://app.example/deals/d1?x=1&y=2" in rendered.text


def test_without_a_reason_or_previous_owner_neither_is_mentioned() -> None:
    rendered = owner_changed(
        record_kind="lead", actor="Mia", new_owner="Rita", previous_owner=None, reason=None, url="u"
    )
    assert "Reason" not in rendered.text + rendered.html
    assert "it was" not in rendered.text


def test_an_sla_breach_names_the_lead_its_stage_and_due_time_and_escapes_the_title() -> None:
    from automation_service.templates import sla_alert

    rendered = sla_alert(
        breached=True,
        title="Acme <b> & Co",
        stage="first response",
        due="2026-03-03 17:00 UTC",
        priority="high",
        url="https://app.example/leads/l1",
    )
    assert rendered.subject == "SLA breached: Acme <b> & Co"
    assert "<strong>Acme &lt;b&gt; &amp; Co</strong>" in rendered.html
    assert rendered.text.startswith(
        'The first response of the lead "Acme <b> & Co" was due at 2026-03-03 17:00 UTC'
    )
    warning = sla_alert(
        breached=False, title="Acme", stage="next touch", due="x", priority="low", url="u"
    )
    assert warning.subject == "SLA due soon: Acme"
    assert "is due at x" in warning.text
