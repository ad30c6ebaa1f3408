"""A small client for the admin API, used by the CLI's admin commands."""

from __future__ import annotations

from typing import Any

import httpx


class AdminError(Exception):
    pass


class AdminClient:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/") + "/admin/v1", headers=headers, timeout=timeout)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, json=body or {})

    def delete(self, path: str, **params: Any) -> Any:
        return self._call("DELETE", path, params={k: v for k, v in params.items() if v is not None})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AdminError(
                f"cannot reach spendgate at {self._http.base_url}: {exc}. "
                "Is `spendgate serve` running? Set --url or SPENDGATE_URL."
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise AdminError(f"HTTP {response.status_code}: {detail}")
        return response.json() if response.content else None
