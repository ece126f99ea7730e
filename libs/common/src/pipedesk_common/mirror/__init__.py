"""The Google service kit: what every Google-facing service (Calendar, Tasks, Drive, Gmail) is
built from, once. A service writes only what is its own — its Google calls as typed models, its
mirror rules, its routes — and ``google_service`` assembles it (see ``docs/architecture.md``).

- ``assembly``: ``GoogleProduct`` and ``google_service``;
- ``runtime``: ``MirrorRuntime``, ``google_user``, ``require_role``;
- ``work``: ``SyncWork`` (“sync this key”), ``keys``: ``SyncKey``;
- ``health``: per-user sync health, its events and gauges;
- ``tables``: ``MirrorTables``; ``links``: record links and their API shapes;
- ``writer``: ``MirrorWriter``; ``paged``: ``PagedSync``;
- ``retention``: an org's retention of mirrored items, its periodic job;
- ``disconnect``: an org's rule for what a disconnected account's mirror becomes;
- ``removal``: a user's (or an org's old) mirrored items removed, each removal announced;
- ``org_settings``: an org's settings row of a product, read and replaced;
- ``routes``: ``GOOGLE_PROBLEMS``, the idempotent create, the webhook, resync and org settings
  routes;
- ``settings``: ``GoogleServiceSettings``, ``PushServiceSettings``.
"""
