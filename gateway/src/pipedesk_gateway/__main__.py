from fastapi import FastAPI

from pipedesk_common.serve import serve
from pipedesk_gateway.app import build_app
from pipedesk_gateway.settings import GatewaySettings


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(GatewaySettings())


if __name__ == "__main__":
    # Forwarded headers are read by the app, from GATEWAY_TRUSTED_PROXIES only (forwarded.py).
    serve("pipedesk_gateway.__main__:app", GatewaySettings(), proxy_headers=False)
