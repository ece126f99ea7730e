import uvicorn

from pipedesk_gateway.app import build_app
from pipedesk_gateway.settings import GatewaySettings

if __name__ == "__main__":
    settings = GatewaySettings()
    # Forwarded headers are read by the app, from GATEWAY_TRUSTED_PROXIES only (forwarded.py).
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.listen_port,
        log_config=None,
        proxy_headers=False,
    )
