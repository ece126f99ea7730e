from gmail_service.models import GmailModel
from pipedesk_common.migrations import run_migrations

run_migrations(GmailModel.metadata)
