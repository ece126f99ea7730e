"""Calling Google: clients built from the bundled discovery documents, one retry policy, errors
mapped to problems, metrics — and credentials from a provider (the accounts service)."""

from pipedesk_common.google.calls import GoogleApi, GoogleCallError, RetryPolicy
from pipedesk_common.google.credentials import CredentialsProvider, GoogleUser

__all__ = ["CredentialsProvider", "GoogleApi", "GoogleCallError", "GoogleUser", "RetryPolicy"]
