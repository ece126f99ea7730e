from accounts_service.models import AccountsModel
from pipedesk_common.migrations import run_migrations

run_migrations(AccountsModel.metadata)
