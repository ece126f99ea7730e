"""Asking the timeline about many messages at once: in requests whose query strings any HTTP
server takes, every identity asked once."""

from gmail_service.reading import MAX_IDENTITIES, MAX_QUERY_CHARACTERS, _url_sized


def test_identities_are_asked_in_groups_a_request_line_holds() -> None:
    long_ones = [f"<{'x' * 290}{n:04d}@example.com>" for n in range(40)]
    short_ones = [f"<{n}@example.com>" for n in range(250)]
    for identities in (long_ones, short_ones, long_ones + short_ones):
        groups = _url_sized(identities)
        assert [identity for group in groups for identity in group] == identities
        for group in groups:
            assert 1 <= len(group) <= MAX_IDENTITIES
            assert sum(3 * len(identity) + 10 for identity in group) <= MAX_QUERY_CHARACTERS
    assert _url_sized([]) == []
