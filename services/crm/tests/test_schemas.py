"""What the document says a payload may hold is what the CRM accepts: the published JSON schema
of an input model and the model's own validation give one verdict on each payload."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, ValidationError

from crm_service.schemas import CompanyCreate, ContactCreate, DealCreate, LeadCreate


def verdicts(model: type[BaseModel], payload: dict[str, Any]) -> tuple[bool, bool]:
    """(whether the model's schema admits ``payload``, whether the model accepts it)."""
    documented = jsonschema_rs.validator_for(model.model_json_schema()).is_valid(payload)
    try:
        model.model_validate(payload)
    except ValidationError:
        return documented, False
    return documented, True


@pytest.mark.parametrize(
    ("amount", "valid"),
    [
        (0, True),
        (12.5, True),
        (0.57, True),
        (1e2, True),
        ("0", True),
        ("1234.56", True),
        ("99999999999999.99", True),
        (12.345, False),
        (-1, False),
        ("12.345", False),
        ("012", False),
        ("1e2", False),
        (" 12", False),
        ("12.", False),
        ("100000000000000", False),
        ("abc", False),
    ],
)
def test_an_amount_is_valid_in_the_document_exactly_when_the_crm_takes_it(
    amount: Any, valid: bool
) -> None:
    payload = {"title": "Renewal", "amount": amount, "currency": "EUR"}
    assert verdicts(DealCreate, payload) == (valid, valid)
    lead = {"title": "Renewal", "estimated_value": amount, "currency": "EUR"}
    assert verdicts(LeadCreate, lead) == (valid, valid)


@pytest.mark.parametrize(
    ("payload", "valid"),
    [
        ({"title": "Renewal"}, True),
        ({"title": "Renewal", "amount": None}, True),
        ({"title": "Renewal", "amount": 10, "currency": "EUR"}, True),
        ({"title": "Renewal", "amount": 10}, False),
        ({"title": "Renewal", "amount": 10, "currency": None}, False),
    ],
)
def test_a_new_deals_amount_comes_with_a_currency_in_the_document_too(
    payload: dict[str, Any], valid: bool
) -> None:
    documented = jsonschema_rs.validator_for(DealCreate.model_json_schema()).is_valid(payload)
    assert documented == valid


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ana@example.com", True),
        (" Ana@Example.COM", False),  # the document describes the address as sent, unpadded
        ("łukasz@przykład.pl", True),
        ("a.b+c@d.e", True),
        ("a b@c.d", False),
        ("a\u00a0b@c.d", False),
        ("a\u2003b@c.d", False),
        ("a\x1cb@c.d", False),
        ("a@b", False),
        ("a@@b.c", False),
        ("<a>@b.c", False),
        ("x" * 316 + "@b.c", True),
        ("x" * 317 + "@b.c", False),
    ],
)
def test_an_email_is_valid_in_the_document_when_the_crm_takes_it(email: str, valid: bool) -> None:
    documented, accepted = verdicts(ContactCreate, {"name": "Ana", "emails": [email]})
    assert documented == valid
    if valid:
        assert accepted


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("example.com", True),
        ("Example.COM", True),
        ("a-b.example.co", True),
        ("-a.com", False),
        ("example", False),
        ("exa mple.com", False),
    ],
)
def test_a_domain_is_valid_in_the_document_exactly_when_the_crm_takes_it(
    domain: str, valid: bool
) -> None:
    assert verdicts(CompanyCreate, {"name": "Acme", "domain": domain}) == (valid, valid)
