"""Calling Google: clients built from the bundled discovery documents, one retry policy, errors
mapped to problems, metrics — and credentials from a provider (the accounts service)."""

from pipedesk_common.google.accounts import AccountsCredentials, accounts_credentials
from pipedesk_common.google.calls import GoogleApi, GoogleCallError, RetryPolicy
from pipedesk_common.google.credentials import (
    CredentialsProvider,
    GoogleDelegationRefused,
    GoogleNotConnected,
    GoogleReconnectRequired,
    GoogleUser,
)
from pipedesk_common.google.scopes import PRODUCT_SCOPES, scopes_for

__all__ = [
    "PRODUCT_SCOPES",
    "AccountsCredentials",
    "CredentialsProvider",
    "GoogleApi",
    "GoogleCallError",
    "GoogleDelegationRefused",
    "GoogleNotConnected",
    "GoogleReconnectRequired",
    "GoogleUser",
    "RetryPolicy",
    "accounts_credentials",
    "scopes_for",
]
