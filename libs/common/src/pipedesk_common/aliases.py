"""Field aliases in request payloads: the frontend sends ``title`` or ``name`` for one field.

``resolve_aliases`` (a ``mode="before"`` model validator) renames an alias to its canonical field
and refuses a payload naming one field twice (422 naming both); ``documented_aliases`` makes each
alias visible in OpenAPI as a property of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipedesk_common.errors import FieldError, InvalidInput

Aliases = Mapping[str, Sequence[str]]


def resolve_aliases(data: Any, aliases: Aliases) -> Any:
    """``data`` with every alias renamed to its canonical name; two names of one field → 422."""
    if not isinstance(data, dict):
        return data
    resolved = dict(data)
    for canonical, others in aliases.items():
        present = [name for name in (canonical, *others) if name in resolved]
        if len(present) > 1:
            names = " and ".join(f"`{name}`" for name in present)
            message = f"{names} name the same field: send only one of them"
            raise InvalidInput(
                message,
                errors=[
                    FieldError(field=f"body.{name}", message=message, code="alias_conflict")
                    for name in present
                ],
            )
        if present and present[0] != canonical:
            resolved[canonical] = resolved.pop(present[0])
    return resolved


def documented_aliases(aliases: Aliases) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` listing each alias as a property described as the alias it is; a
    required field is required under exactly one of its names, and no payload names an optional
    field twice (``not`` any pair of its names, as ``resolve_aliases`` refuses)."""

    def document(schema: dict[str, Any]) -> None:
        properties = schema.get("properties", {})
        twice: list[list[str]] = []  # the pairs of names of one optional field
        for canonical, others in aliases.items():
            if canonical not in properties:
                continue
            names = [canonical, *others]
            required: list[str] = schema.get("required", [])
            if canonical in required:
                required.remove(canonical)
                if not required:
                    del schema["required"]
                one_of = {"oneOf": [{"required": [name]} for name in names]}
                schema.setdefault("allOf", []).append(one_of)
            else:
                twice.extend(
                    [first, second]
                    for index, first in enumerate(names)
                    for second in names[index + 1 :]
                )
            base = properties[canonical]
            listed = ", ".join(f"`{name}`" for name in names)
            base["description"] = (
                base.get("description", "") + f" Also accepted as {listed} (only one per payload)."
            ).strip()
            for alias in others:
                properties[alias] = {
                    **{key: value for key, value in base.items() if key != "description"},
                    "title": alias,
                    "description": f"Alias of `{canonical}`.",
                }
        if twice:
            # One ``not`` over every pair: generators handle it where many ``not``s side by side
            # multiply out past what they can draw from.
            schema.setdefault("allOf", []).append(
                {"not": {"anyOf": [{"required": pair} for pair in twice]}}
            )

    return document
