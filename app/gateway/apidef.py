"""What the gateway says about its APIs: `GET /hello` and `GET /tyk/apis`, read into small values.

Pure and I/O-free, so it can run in a worker. Every list and string a gateway sends is capped
here: the catalog is another process's output, and its size must not become ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# A catalog larger than this is cut, and says so.
MAX_APIS = 20_000
MAX_HOOKS_PER_TYPE = 64
MAX_TEXT = 512

# The hook types in the order the gateway runs them (Tyk's names, as the Object's hook_type says).
HOOK_ORDER = ("Pre", "CustomKeyCheck", "PostKeyAuth", "Post", "Response")
_SECTION_OF = {"Pre": "pre", "PostKeyAuth": "post_key_auth", "Post": "post", "Response": "response"}


class CatalogError(ValueError):
    """A gateway's answer is not what `/hello` or `/tyk/apis` send."""


@dataclass(frozen=True, slots=True)
class ConfiguredHook:
    """One hook of an API's `custom_middleware`."""

    hook_type: str
    name: str
    disabled: bool = False
    require_session: bool = False
    raw_body_only: bool = False
    position: int = 0
    """Its place among the hooks of its type."""


@dataclass(frozen=True, slots=True)
class ApiDefinition:
    """The part of a Classic API definition that says which hooks the gateway calls."""

    api_id: str
    name: str = ""
    listen_path: str = ""
    org_id: str = ""
    active: bool = True
    use_keyless: bool = False
    custom_plugin_auth: bool = False
    driver: str = ""
    bundle: str = ""
    bundle_disabled: bool = False
    is_oas: bool = False
    hooks: tuple[ConfiguredHook, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "api_id": self.api_id,
            "name": self.name,
            "listen_path": self.listen_path,
            "org_id": self.org_id,
            "active": self.active,
            "use_keyless": self.use_keyless,
            "custom_plugin_auth_enabled": self.custom_plugin_auth,
            "driver": self.driver,
            "bundle": self.bundle,
            "bundle_disabled": self.bundle_disabled,
            "is_oas": self.is_oas,
        }


@dataclass(frozen=True, slots=True)
class ApiList:
    apis: tuple[ApiDefinition, ...]
    cut: int = 0
    """APIs left out past MAX_APIS."""


def parse_hello(body: bytes) -> str | None:
    """The version `GET /hello` reports (e.g. "5.14.0"; a leading `v` is read too), or None when it says none."""
    document = _json(body, "/hello")
    if not isinstance(document, dict):
        raise CatalogError("/hello did not answer a JSON object: is this a Tyk Gateway?")
    version = document.get("version")
    return _text(version) or None if isinstance(version, str) else None


def parse_api_list(body: bytes) -> ApiList:
    """Every API of a `GET /tyk/apis` answer (Classic definitions; OAS ones arrive converted)."""
    document = _json(body, "/tyk/apis")
    if isinstance(document, dict) and "message" in document:
        raise CatalogError(f"/tyk/apis answered: {_text(document.get('message'))}")
    if not isinstance(document, list):
        raise CatalogError("/tyk/apis did not answer a JSON list of API definitions")
    apis = tuple(_api(item) for item in document[:MAX_APIS] if isinstance(item, dict) and item.get("api_id"))
    return ApiList(apis, cut=max(0, len(document) - MAX_APIS))


def _json(body: bytes, where: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise CatalogError(f"{where} did not answer JSON: is this a Tyk Gateway's API port?") from None


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _api(item: dict[str, Any]) -> ApiDefinition:
    middleware = _dict(item.get("custom_middleware"))
    return ApiDefinition(
        api_id=_text(item.get("api_id")),
        name=_text(item.get("name")),
        listen_path=_text(_dict(item.get("proxy")).get("listen_path")),
        org_id=_text(item.get("org_id")),
        active=item.get("active") is True,
        use_keyless=item.get("use_keyless") is True,
        # The older spellings still switch custom auth on in the gateway.
        custom_plugin_auth=any(item.get(k) is True for k in ("custom_plugin_auth_enabled", "enable_coprocess_auth")),
        driver=_text(middleware.get("driver")),
        bundle=_text(item.get("custom_middleware_bundle")),
        bundle_disabled=item.get("custom_middleware_bundle_disabled") is True,
        is_oas=item.get("is_oas") is True,
        hooks=_hooks(middleware),
    )


def _hooks(middleware: dict[str, Any]) -> tuple[ConfiguredHook, ...]:
    hooks: list[ConfiguredHook] = []
    for hook_type in HOOK_ORDER:
        if hook_type == "CustomKeyCheck":
            # One object, not a list; an empty name means no auth hook.
            entries: list[Any] = [middleware.get("auth_check")]
        else:
            listed = middleware.get(_SECTION_OF[hook_type])
            entries = listed[:MAX_HOOKS_PER_TYPE] if isinstance(listed, list) else []
        for position, entry in enumerate(e for e in entries if isinstance(e, dict) and _text(e.get("name"))):
            hooks.append(
                ConfiguredHook(
                    hook_type=hook_type,
                    name=_text(entry.get("name")),
                    disabled=entry.get("disabled") is True,
                    require_session=entry.get("require_session") is True,
                    raw_body_only=entry.get("raw_body_only") is True,
                    position=position,
                )
            )
    return tuple(hooks)
