"""How a service process is served: the loop, the parser and the access log it runs with."""

from typing import Any, ClassVar

import pytest
import uvicorn

from pipedesk_common import serve as serving
from pipedesk_common.settings import BaseServiceSettings


class _Settings(BaseServiceSettings):
    service_name: ClassVar[str] = "crm"


def test_a_service_serves_on_uvloop_and_httptools_without_uvicorns_access_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    settings = _Settings(port_base=41000, workers=2)

    serving.serve("crm_service.__main__:app", settings, proxy_headers=False)

    [(args, options)] = calls
    assert args == ("crm_service.__main__:app",)
    assert options["factory"] is True
    assert (options["host"], options["port"], options["workers"]) == (
        settings.host,
        settings.listen_port,
        2,
    )
    # Named: a missing package fails the start instead of falling back to pure Python.
    assert (options["loop"], options["http"]) == ("uvloop", "httptools")
    # The request-context middleware writes the one access line per request.
    assert options["access_log"] is False
    assert options["log_config"] is None
    assert options["proxy_headers"] is False
