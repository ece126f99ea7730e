"""``python -m dev_identity serve|token|init``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from dev_identity.keystore import DEFAULT_AUDIENCE, DEFAULT_ISSUER, KeyStore, TokenMinter
from dev_identity.server import SESSION_HOURS, create_identity_app
from pipedesk_common.auth import Role
from pipedesk_common.settings import DEFAULT_PORT_BASE, DEV_KEY_DIR, port_for


def _store() -> KeyStore:
    return KeyStore(Path(os.environ.get("DEV_KEY_DIR", DEV_KEY_DIR)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev_identity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="generate the signing keys if they do not exist yet")
    commands.add_parser("serve", help="serve the JWKS on the Wiring port")
    token = commands.add_parser("token", help="print an access token")
    token.add_argument("--sub", required=True)
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    token.add_argument("--org", required=True)
    token.add_argument("--teams", default="", help="comma-separated team ids")
    token.add_argument("--email", default=None)
    token.add_argument("--hours", type=int, default=12)
    args = parser.parse_args(argv)

    store = _store()
    minter = TokenMinter(
        store.identity_key(),
        issuer=os.environ.get("AUTH_ISSUER", DEFAULT_ISSUER),
        audience=os.environ.get("AUTH_AUDIENCE", DEFAULT_AUDIENCE),
        lifetime_seconds=args.hours * 3600 if args.command == "token" else SESSION_HOURS * 3600,
    )
    if args.command == "init":
        store.ensure()
        print(f"keys ready in {store.directory}")
        return 0
    if args.command == "serve":
        port_base = int(os.environ.get("PORT_BASE", DEFAULT_PORT_BASE))
        uvicorn.run(
            create_identity_app(store, minter=minter),
            # In a container, all interfaces (IDENTITY_HOST=0.0.0.0), so the services reach it.
            host=os.environ.get("IDENTITY_HOST") or "127.0.0.1",
            port=port_for("identity", port_base),
            log_level="warning",
        )
        return 0
    teams = [team for team in args.teams.split(",") if team]
    sys.stdout.write(
        minter.mint(sub=args.sub, org_id=args.org, role=args.role, email=args.email, team_ids=teams)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
