"""Whether text is an e-mail address Google would take (for attendees, recipients, shares).

The syntax is checked by ``email-validator`` (RFC 5321/5322, internationalised addresses too),
never the domain's DNS: refusing here, before any Google call, names the field in a 422 where
Google would only answer a 400 without saying which address. Special-use domains that cannot
receive mail (``.invalid``, ``.localhost``, ``.local``, ``.onion``, ``.arpa``) are refused;
``.test`` is kept for development.
"""

from __future__ import annotations

from typing import Final

from email_validator import EmailNotValidError, validate_email

# One character of an address in a published pattern: no "@", no whitespace (spelled out, since
# Python's ``\\s`` and Rust's differ and the document is read by both), no control character (so
# the input policy's pattern beside it never filters what it generates), none of <>(),;:"[]
ADDRESS_CHARACTER: Final = (
    "[^@\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
    '\\ufeff<>(),;:"\\[\\]]'
)
EMAIL_PATTERN: Final = f"^{ADDRESS_CHARACTER}+@{ADDRESS_CHARACTER}+\\.{ADDRESS_CHARACTER}+$"


def email_address_problem(value: str) -> str | None:
    """Why ``value`` is not an e-mail address, or None if it is one."""
    try:
        validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        return str(error)
    return None
