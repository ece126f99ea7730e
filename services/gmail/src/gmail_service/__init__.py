"""PipeDesk gmail: every connected mailbox synced by history and push, matched onto timelines."""
