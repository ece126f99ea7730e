from hypothesis import given
from hypothesis import strategies as st

from pipedesk_common.auth import Principal, Role
from pipedesk_common.rbac import AccessList, Action, MemberRole, can, read_scope

USERS = st.sampled_from(["u1", "u2", "u3"])
TEAMS = st.sampled_from(["t1", "t2", "t3"])
ORGS = st.sampled_from(["org-a", "org-b"])

principals = st.builds(
    Principal,
    sub=USERS,
    email=st.just("someone@example.com"),
    org_id=ORGS,
    role=st.sampled_from(list(Role)),
    team_ids=st.frozensets(TEAMS, max_size=2),
)
access_lists = st.builds(
    AccessList,
    org_id=ORGS,
    owner_id=st.none() | USERS,
    team_id=st.none() | TEAMS,
    members=st.dictionaries(USERS, st.sampled_from(list(MemberRole)), max_size=2),
)


@given(principals, access_lists)
def test_read_scope_admits_exactly_what_can_allows_to_read(
    principal: Principal, access: AccessList
) -> None:
    assert read_scope(principal).admits(access) == can(principal, Action.READ, access)


@given(principals, access_lists, st.sampled_from(list(Action)))
def test_nothing_is_allowed_across_orgs(
    principal: Principal, access: AccessList, action: Action
) -> None:
    if principal.org_id != access.org_id:
        assert not can(principal, action, access)


@given(principals, access_lists, st.sampled_from(list(Action)))
def test_every_allowed_action_implies_read(
    principal: Principal, access: AccessList, action: Action
) -> None:
    if can(principal, action, access):
        assert can(principal, Action.READ, access)


@given(principals, access_lists, st.sampled_from([a for a in Action if a is not Action.READ]))
def test_viewers_never_write(principal: Principal, access: AccessList, action: Action) -> None:
    if principal.role is Role.VIEWER:
        assert not can(principal, action, access)


def _p(role: Role, sub: str = "me", teams: tuple[str, ...] = ("t1",)) -> Principal:
    return Principal(
        sub=sub, email="me@example.com", org_id="org", role=role, team_ids=frozenset(teams)
    )


def test_the_role_matrix_of_the_design() -> None:
    theirs_in_my_team = AccessList(org_id="org", owner_id="other", team_id="t1")
    theirs_elsewhere = AccessList(org_id="org", owner_id="other", team_id="t9")
    mine = AccessList(org_id="org", owner_id="me", team_id="t9")
    followed = AccessList(
        org_id="org", owner_id="other", team_id="t9", members={"me": MemberRole.FOLLOWER}
    )
    collaborating = AccessList(
        org_id="org", owner_id="other", team_id="t9", members={"me": MemberRole.COLLABORATOR}
    )
    admin, manager, rep, viewer = (
        _p(role) for role in (Role.ADMIN, Role.MANAGER, Role.REP, Role.VIEWER)
    )

    assert can(admin, Action.CHANGE_OWNER, theirs_elsewhere)
    assert can(manager, Action.UPDATE, theirs_in_my_team)
    assert not can(manager, Action.READ, theirs_elsewhere)
    assert not can(rep, Action.READ, theirs_in_my_team)
    assert can(rep, Action.DELETE, mine)
    assert can(rep, Action.CHANGE_OWNER, mine)
    assert not can(rep, Action.CHANGE_OWNER, collaborating)
    assert can(rep, Action.READ, followed)
    assert not can(rep, Action.UPDATE, followed)
    assert can(rep, Action.UPDATE, collaborating)
    assert not can(rep, Action.DELETE, collaborating)
    assert can(viewer, Action.READ, theirs_in_my_team)
    assert not can(viewer, Action.UPDATE, theirs_in_my_team)
    assert not can(viewer, Action.READ, theirs_elsewhere)
