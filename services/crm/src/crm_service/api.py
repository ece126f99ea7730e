"""Record routes (leads, deals, contacts, companies): parse, authorize (through the services),
answer. Every ``/api`` route upserts the caller into the directory first (``CallerDep``)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from pydantic import BaseModel, Field

from crm_service.audit import access_of
from crm_service.directory import upsert_caller
from crm_service.models import DealStage, LeadPriority, LeadStatus
from crm_service.repository import (
    CompanyRepository,
    ContactRepository,
    DealRepository,
    Filters,
    LeadRepository,
    RecordRepository,
)
from crm_service.schemas import (
    AccessListPublic,
    CompanyCreate,
    CompanyPublic,
    CompanyUpdate,
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    DealCreate,
    DealPublic,
    DealUpdate,
    Email,
    LeadConvert,
    LeadCreate,
    LeadPublic,
    LeadUpdate,
    MemberPublic,
    MemberPut,
    NoteCreate,
    NoteEdit,
    NotePublic,
    OwnerChange,
    Sort,
)
from crm_service.service import (
    CompanyService,
    ContactService,
    DealService,
    LeadService,
    OwnedRecordService,
    RecordService,
)
from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.auth import Principal, ServiceCaller
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.idempotent import IDEMPOTENCY_PROBLEMS, IDEMPOTENT
from pipedesk_common.ids import OpaqueIdPath
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.pagination import CursorCodec, Page, PageCursor, PageLimit

MAX_PAGE = 100


async def current_caller(
    principal: PrincipalDep, session: SessionDep, context: ContextDep
) -> Principal:
    """The token's user, upserted into the directory and made the actor of the audit."""
    await upsert_caller(session, principal, context.clock)
    return principal


CallerDep = Annotated[Principal, Depends(current_caller)]
TextQuery = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Text in names (and emails)")
]
Deleted = Annotated[bool, Query(description="List deleted records instead (the trash)")]


# An ETag of ours: a record's version, quoted (``W/`` tolerated).
ETAG_PATTERN: Final = r'^(W/)?"[0-9]{1,18}"$'


def _etag(version: int) -> str:
    return f'"{version}"'


def _parse_if_match(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInput(
            "If-Match must be an ETag this API returned",
            errors=[
                FieldError(field="header.if-match", message="not an ETag of ours", code="invalid")
            ],
        )
    return int(value)


P = TypeVar("P", bound=BaseModel)


def page_of(
    public: type[P],
    rows: list[Any],
    limit: int,
    sort: str,
    cursors: CursorCodec,
    scope: str,
) -> Page[P]:
    items = [public.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = cursors.encode_keyset(getattr(last, sort.lstrip("-")), last.id, scope=scope)
    return Page[public](items=items, next_cursor=next_cursor)  # type: ignore[valid-type]


def etag_and_update_link(kind: "Kind", record_id: str) -> dict[str, Any]:
    """A response's ``ETag`` header, and the link to change the record it names conditionally:
    its id (``record_id``, a runtime expression) and ``If-Match`` with that ETag."""
    update = "#/paths/" + f"/api/{kind.plural}/{{{kind.param}}}".replace("/", "~1") + "/patch"
    return {
        "headers": {
            "ETag": {
                "description": "The record's version, quoted: `If-Match` of a later change",
                "schema": {"type": "string", "pattern": ETAG_PATTERN},
            }
        },
        "links": {
            f"Update{kind.name.capitalize()}IfUnchanged": {
                "operationRef": update,
                "description": f"Change the {kind.name} if no one changed it since",
                "parameters": {
                    f"path.{kind.param}": record_id,
                    "header.if-match": "$response.header.ETag",
                },
            }
        },
    }


@dataclass(frozen=True)
class Kind:
    """One kind of record, as its routes present it."""

    name: str
    plural: str
    service: type[RecordService[Any]]
    repository: Callable[[Any], Any]
    create: type[BaseModel]
    update: type[BaseModel]
    public: type[BaseModel]

    @property
    def param(self) -> str:
        return f"{self.name}_id"


LEAD = Kind("lead", "leads", LeadService, LeadRepository, LeadCreate, LeadUpdate, LeadPublic)
DEAL = Kind("deal", "deals", DealService, DealRepository, DealCreate, DealUpdate, DealPublic)
CONTACT = Kind(
    "contact",
    "contacts",
    ContactService,
    ContactRepository,
    ContactCreate,
    ContactUpdate,
    ContactPublic,
)
COMPANY = Kind(
    "company",
    "companies",
    CompanyService,
    CompanyRepository,
    CompanyCreate,
    CompanyUpdate,
    CompanyPublic,
)


def service_of(kind: Kind) -> Callable[..., Any]:
    async def build(session: SessionDep, context: ContextDep) -> Any:
        return kind.service(kind.repository(session), context.clock)

    return build


def record_router(kind: Kind) -> APIRouter:
    """The routes every kind of record has; list routes (their filters differ) are added apart."""
    router = APIRouter(prefix=f"/api/{kind.plural}", tags=[kind.plural])
    ServiceDep = Annotated[Any, Depends(service_of(kind))]
    RecordId = Annotated[UUID, Path(alias=kind.param)]
    path = f"/{{{kind.param}}}"
    Create, Update, Public = kind.create, kind.update, kind.public

    def answer(record: Any, response: Response) -> Any:
        public = Public.model_validate(record)
        response.headers["ETag"] = _etag(record.version)
        return public

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary=f"Create a {kind.name}",
        description=(
            "The caller creates it in their org and, for leads and deals, owns it. "
            "Answers the record with its `ETag` and `Location`; its audit entry and its "
            "event are written in the same transaction. With `Idempotency-Key`, a retry "
            "answers the first result."
        ),
        response_model=Public,
        responses={
            201: etag_and_update_link(kind, "$response.body#/id"),
            **problem_responses(Unauthorized, Forbidden, InvalidInput, *IDEMPOTENCY_PROBLEMS),
        },
        dependencies=[IDEMPOTENT],
    )
    async def create(
        data: Create,  # type: ignore[valid-type]
        principal: CallerDep,
        service: ServiceDep,
        response: Response,
    ) -> Any:
        record = await service.create(principal, data)
        response.headers["Location"] = f"/api/{kind.plural}/{record.id}"
        return answer(record, response)

    @router.get(
        path,
        summary=f"Get a {kind.name}",
        description=(
            "The record with its `ETag` (its version), if the caller may read it; one "
            "they may not read is `404`, as if it did not exist."
        ),
        response_model=Public,
        responses={
            200: etag_and_update_link(kind, f"$request.path.{kind.param}"),
            **problem_responses(Unauthorized, NotFound),
        },
    )
    async def get(
        record_id: RecordId, principal: CallerDep, service: ServiceDep, response: Response
    ) -> Any:
        return answer(await service.get(principal, record_id), response)

    @router.patch(
        path,
        summary=f"Change some fields of a {kind.name}",
        description=(
            "Only the fields sent change (JSON merge). `If-Match` with the `ETag` "
            "read makes the change conditional (`412` if someone changed it since). "
            "Each change is audited field by field."
        ),
        response_model=Public,
        responses=problem_responses(
            Unauthorized, Forbidden, NotFound, PreconditionFailed, InvalidInput
        ),
    )
    async def update(
        record_id: RecordId,
        data: Update,  # type: ignore[valid-type]
        principal: CallerDep,
        service: ServiceDep,
        response: Response,
        if_match: Annotated[
            str | None,
            Header(
                description=f"Only update if the {kind.name}'s ETag is this",
                pattern=ETAG_PATTERN,
            ),
        ] = None,
    ) -> Any:
        record = await service.update(
            principal, record_id, data, if_match=_parse_if_match(if_match)
        )
        return answer(record, response)

    @router.delete(
        path,
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary=f"Move a {kind.name} to the trash (restorable)",
        description=(
            "A soft delete: the record leaves lists and searches, keeps its history, "
            "and can be restored with `POST …/restore`."
        ),
        responses=problem_responses(Unauthorized, Forbidden, NotFound),
    )
    async def delete(record_id: RecordId, principal: CallerDep, service: ServiceDep) -> None:
        await service.delete(principal, record_id)

    @router.post(
        f"{path}/restore",
        summary=f"Restore a deleted {kind.name}",
        description="Brings a record back from the trash, as it was when it was deleted.",
        response_model=Public,
        responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict),
    )
    async def restore(
        record_id: RecordId, principal: CallerDep, service: ServiceDep, response: Response
    ) -> Any:
        return answer(await service.restore(principal, record_id), response)

    @router.post(
        f"{path}/notes",
        status_code=status.HTTP_201_CREATED,
        summary=f"Add a note to a {kind.name}",
        description=(
            "A note by the caller on a record they may read; it appears on the record's timeline."
        ),
        responses=problem_responses(
            Unauthorized, Forbidden, NotFound, InvalidInput, *IDEMPOTENCY_PROBLEMS
        ),
        dependencies=[IDEMPOTENT],
    )
    async def add_note(
        record_id: RecordId, data: NoteCreate, principal: CallerDep, service: ServiceDep
    ) -> NotePublic:
        note = await service.add_note(principal, record_id, data.body, data.kind)
        return NotePublic.model_validate(note)

    @router.get(
        f"{path}/notes",
        summary=f"The notes of a {kind.name}, newest first",
        description=(
            "Notes of a record the caller may read, a page at a time: pass "
            "`next_cursor` back as `cursor` until it is null."
        ),
        responses=problem_responses(Unauthorized, NotFound, InvalidCursor),
    )
    async def list_notes(
        record_id: RecordId,
        principal: CallerDep,
        service: ServiceDep,
        context: ContextDep,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> Page[NotePublic]:
        scope = f"notes:{kind.name}:{record_id}"
        after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
        rows = await service.notes(principal, record_id, after=after, limit=limit + 1)
        return page_of(NotePublic, rows, limit, "-created_at", context.cursors, scope)

    @router.patch(
        f"{path}/notes/{{note_id}}",
        summary="Edit a note (its author only)",
        description=(
            "Replaces a note's text; only its author may, and only on a record they may still read."
        ),
        responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
    )
    async def edit_note(
        record_id: RecordId,
        note_id: UUID,
        data: NoteEdit,
        principal: CallerDep,
        service: ServiceDep,
    ) -> NotePublic:
        note = await service.edit_note(principal, record_id, note_id, data.body)
        return NotePublic.model_validate(note)

    @router.delete(
        f"{path}/notes/{{note_id}}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Delete a note (its author only)",
        description="Removes a note for good; only its author may. The removal is audited.",
        responses=problem_responses(Unauthorized, Forbidden, NotFound),
    )
    async def delete_note(
        record_id: RecordId, note_id: UUID, principal: CallerDep, service: ServiceDep
    ) -> None:
        await service.delete_note(principal, record_id, note_id)

    if issubclass(kind.service, OwnedRecordService):
        add_owned_routes(router, kind, ServiceDep, RecordId, answer)
    return router


def add_owned_routes(
    router: APIRouter,
    kind: Kind,
    ServiceDep: Any,
    RecordId: Any,
    answer: Callable[[Any, Response], Any],
) -> None:
    path = f"/{{{kind.param}}}"

    @router.post(
        f"{path}/change-owner",
        summary=f"Hand a {kind.name} to another user of the org",
        description=(
            "The new owner must be an active user of the org; the previous owner may "
            "stay as a collaborator. Audited, and the record's access list event follows."
        ),
        response_model=kind.public,
        responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict, InvalidInput),
    )
    async def change_owner(
        record_id: RecordId,
        data: OwnerChange,
        principal: CallerDep,
        service: ServiceDep,
        response: Response,
    ) -> Any:
        return answer(await service.change_owner(principal, record_id, data), response)

    @router.get(
        f"{path}/members",
        summary=f"The members of a {kind.name}",
        description=f"Anyone who may read the {kind.name} sees its collaborators and followers "
        "(the owner is not a member), oldest first, a page at a time.",
        responses=problem_responses(Unauthorized, NotFound, InvalidInput, InvalidCursor),
    )
    async def list_members(
        record_id: RecordId,
        principal: CallerDep,
        service: ServiceDep,
        context: ContextDep,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> Page[MemberPublic]:
        members = [
            MemberPublic.model_validate(member)
            for member in await service.members(principal, record_id)
        ]
        return context.cursors.listed_page(
            members,
            limit,
            cursor,
            key=lambda member: [member.added_at.isoformat(), member.user_id],
            scope=f"members:{kind.name}:{record_id}",
        )

    @router.put(
        f"{path}/members/{{user_id:path}}",  # an opaque id may hold "/"
        summary=f"Add a member to a {kind.name}, or change their role",
        description=(
            "Collaborators read and edit, followers read. The user must be an active "
            "user of the org; the owner is never a member."
        ),
        responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
    )
    async def put_member(
        record_id: RecordId,
        user_id: OpaqueIdPath,
        data: MemberPut,
        principal: CallerDep,
        service: ServiceDep,
    ) -> MemberPublic:
        member = await service.put_member(principal, record_id, user_id, data.role)
        return MemberPublic.model_validate(member)

    @router.delete(
        f"{path}/members/{{user_id:path}}",  # an opaque id may hold "/"
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary=f"Remove a member from a {kind.name} (members may remove themselves)",
        description=(
            "Those who manage the record's members may remove anyone; a member may "
            "remove themselves."
        ),
        responses=problem_responses(Unauthorized, Forbidden, NotFound),
    )
    async def remove_member(
        record_id: RecordId, user_id: OpaqueIdPath, principal: CallerDep, service: ServiceDep
    ) -> None:
        await service.remove_member(principal, record_id, user_id)


leads = record_router(LEAD)
deals = record_router(DEAL)
contacts = record_router(CONTACT)
companies = record_router(COMPANY)

LeadServiceDep = Annotated[LeadService, Depends(service_of(LEAD))]
DealServiceDep = Annotated[DealService, Depends(service_of(DEAL))]
ContactServiceDep = Annotated[ContactService, Depends(service_of(CONTACT))]
CompanyServiceDep = Annotated[CompanyService, Depends(service_of(COMPANY))]


@leads.get(
    "",
    summary="List the leads the caller may read, newest first",
    description=(
        "Filters by status, priority, owner, team, tag and text; admins see the org's "
        "leads, managers their teams', reps those they own or are members of. A page "
        "at a time: pass `next_cursor` back as `cursor`; `deleted=true` lists the "
        "trash."
    ),
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_leads(
    principal: CallerDep,
    service: LeadServiceDep,
    context: ContextDep,
    status_: Annotated[list[LeadStatus], Query(alias="status")] = [],  # noqa: B006
    priority: Annotated[list[LeadPriority], Query()] = [],  # noqa: B006
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    team_id: Annotated[str | None, Query(max_length=255)] = None,
    company_id: UUID | None = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Text in title, company or contacts"),
    ] = None,
    deleted: Deleted = False,
    sort: Sort = "-created_at",
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[LeadPublic]:
    equals = {"owner_id": owner_id, "team_id": team_id, "company_id": company_id}
    filters = Filters(
        one_of=[
            ("status", tuple(sorted(value.value for value in status_))),
            ("priority", tuple(sorted(value.value for value in priority))),
        ],
        equals=[(name, value) for name, value in equals.items() if value is not None],
        q=q,
        deleted=deleted,
    )
    scope = f"leads:{sort}:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await service.list_readable(principal, filters, sort=sort, after=after, limit=limit + 1)
    return page_of(LeadPublic, rows, limit, sort, context.cursors, scope)


@leads.post(
    "/{lead_id}/convert",
    status_code=status.HTTP_201_CREATED,
    summary="Convert a lead into a deal linked to it",
    description=(
        "Creates a deal linked to the lead and marks the lead converted; a lead "
        "converts once (`409` after)."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, Conflict, InvalidInput, *IDEMPOTENCY_PROBLEMS
    ),
    dependencies=[IDEMPOTENT],
)
async def convert_lead(
    lead_id: UUID,
    principal: CallerDep,
    service: LeadServiceDep,
    response: Response,
    data: LeadConvert | None = None,
) -> DealPublic:
    deal = await service.convert(principal, lead_id, data or LeadConvert())
    response.headers["Location"] = f"/api/deals/{deal.id}"
    response.headers["ETag"] = _etag(deal.version)
    return DealPublic.model_validate(deal)


@deals.get(
    "",
    summary="List the deals the caller may read, newest first",
    description=(
        "Filters by stage, owner, team and text, with the same visibility as leads. A "
        "page at a time: pass `next_cursor` back as `cursor`; `deleted=true` lists "
        "the trash."
    ),
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_deals(
    principal: CallerDep,
    service: DealServiceDep,
    context: ContextDep,
    stage: Annotated[list[DealStage], Query()] = [],  # noqa: B006
    open_: Annotated[
        bool | None, Query(alias="open", description="true: not won or lost; false: won or lost")
    ] = None,
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    team_id: Annotated[str | None, Query(max_length=255)] = None,
    company_id: UUID | None = None,
    lead_id: UUID | None = None,
    q: TextQuery = None,
    deleted: Deleted = False,
    sort: Sort = "-created_at",
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[DealPublic]:
    stages = {value.value for value in stage}
    if open_ is not None:
        closed = {DealStage.WON.value, DealStage.LOST.value}
        allowed = {value.value for value in DealStage} - closed if open_ else closed
        if stages and not stages & allowed:  # e.g. stage=won&open=true: nothing can match
            return Page[DealPublic](items=[], next_cursor=None)
        stages = (stages & allowed) if stages else allowed
    equals = {
        "owner_id": owner_id,
        "team_id": team_id,
        "company_id": company_id,
        "lead_id": lead_id,
    }
    filters = Filters(
        one_of=[("stage", tuple(sorted(stages)))],
        equals=[(name, value) for name, value in equals.items() if value is not None],
        q=q,
        deleted=deleted,
    )
    scope = f"deals:{sort}:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await service.list_readable(principal, filters, sort=sort, after=after, limit=limit + 1)
    return page_of(DealPublic, rows, limit, sort, context.cursors, scope)


@contacts.get(
    "",
    summary="List the org's contacts, newest first",
    description=(
        "Contacts are readable org-wide. Filters by company and text; a page at a "
        "time: pass `next_cursor` back as `cursor`; `deleted=true` lists the trash."
    ),
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_contacts(
    principal: CallerDep,
    service: ContactServiceDep,
    context: ContextDep,
    company_id: UUID | None = None,
    email: Annotated[Email | None, Query(description="Contacts with exactly this address")] = None,
    q: TextQuery = None,
    deleted: Deleted = False,
    sort: Sort = "-created_at",
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[ContactPublic]:
    filters = Filters(
        equals=[("company_id", company_id)] if company_id else [],
        contains_email=email,
        q=q,
        deleted=deleted,
    )
    scope = f"contacts:{sort}:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await service.list_readable(principal, filters, sort=sort, after=after, limit=limit + 1)
    return page_of(ContactPublic, rows, limit, sort, context.cursors, scope)


@companies.get(
    "",
    summary="List the org's companies, newest first",
    description=(
        "Companies are readable org-wide. Filters by text; a page at a time: pass "
        "`next_cursor` back as `cursor`; `deleted=true` lists the trash."
    ),
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_companies(
    principal: CallerDep,
    service: CompanyServiceDep,
    context: ContextDep,
    q: TextQuery = None,
    deleted: Deleted = False,
    sort: Sort = "-created_at",
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[CompanyPublic]:
    filters = Filters(q=q, deleted=deleted)
    scope = f"companies:{sort}:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await service.list_readable(principal, filters, sort=sort, after=after, limit=limit + 1)
    return page_of(CompanyPublic, rows, limit, sort, context.cursors, scope)


internal = APIRouter(prefix="/internal", tags=["internal"])
# The services keeping replicas of the access lists: the Google mirrors and the timeline.
ACL_CALLERS = ("automation", "calendar", "drive", "gmail", "tasks", "timeline")
AclCallerDep = Annotated[ServiceCaller, Depends(callers(*ACL_CALLERS))]


@internal.get(
    "/acl/lead/{lead_id}",
    summary="A lead's access list, for other services' replicas (callers: calendar, drive, "
    "gmail, tasks, timeline)",
    responses={**internal_problems(), **problem_responses(NotFound)},
)
async def lead_access_list(
    lead_id: UUID, caller: AclCallerDep, service: LeadServiceDep
) -> AccessListPublic:
    lead, members = await service.access_of(lead_id)
    return AccessListPublic(type="lead", **access_of(lead, members).model_dump())


@internal.get(
    "/acl/deal/{deal_id}",
    summary="A deal's access list, for other services' replicas (callers: calendar, drive, "
    "gmail, tasks, timeline)",
    responses={**internal_problems(), **problem_responses(NotFound)},
)
async def deal_access_list(
    deal_id: UUID, caller: AclCallerDep, service: DealServiceDep
) -> AccessListPublic:
    deal, members = await service.access_of(deal_id)
    return AccessListPublic(type="deal", **access_of(deal, members).model_dump())


class RecordNamePublic(BaseModel):
    """What another service shows of a record it files things under: its name and state."""

    type: Literal["lead", "deal", "contact", "company"]
    id: str
    org_id: str
    name: str
    deleted: bool
    version: int
    lead_id: str | None = None
    stage: str | None = Field(None, description="A deal's stage (none for other records)")


@internal.get(
    "/records/{record_type}/{record_id}",
    summary="A record's name, whether it is deleted and a deal's stage (service tokens of: "
    "automation, drive)",
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def record_name(
    record_type: Literal["lead", "deal", "contact", "company"],
    record_id: UUID,
    caller: Annotated[ServiceCaller, Depends(callers("automation", "drive"))],
    session: SessionDep,
) -> RecordNamePublic:
    repositories: dict[str, type[RecordRepository[Any]]] = {
        "lead": LeadRepository,
        "deal": DealRepository,
        "contact": ContactRepository,
        "company": CompanyRepository,
    }
    record: Any = await repositories[record_type](session).get_by_id(record_id)
    if record is None:
        raise NotFound(f"no such {record_type}")
    lead_id = getattr(record, "lead_id", None)
    return RecordNamePublic(
        type=record_type,
        id=str(record.id),
        org_id=record.org_id,
        name=getattr(record, "title", None) or getattr(record, "name", ""),
        deleted=record.deleted_at is not None,
        version=record.version,
        lead_id=str(lead_id) if lead_id else None,
        stage=getattr(record, "stage", None) if record_type == "deal" else None,
    )
