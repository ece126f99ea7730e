from pipedesk_common import migrations


def test_alembic_check_finds_no_drift(database_url: str) -> None:
    migrations.check(database_url, "automation")
