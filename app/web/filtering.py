"""`q=` on the list, the stream and exports: one filter language (docs/filters.md), one matcher.

The older one-field parameters (`hook_type=`, `status=`, ...) are shorthands for the same terms.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from app.query.matcher import Matcher, Searcher, compile_query
from app.query.parser import And, Node, QueryError, parse
from app.query.parser import Query as ParsedQuery
from app.web.context import Context, WebContext

router = APIRouter(prefix="/api", tags=["query"])

# One value of the filter language's status: (docs/filters.md), as the page's status box takes it.
STATUS_VALUE = r"^\s*(?:(?:[<>]=?\s*)?\d{1,3}|\d{1,3}\s*-\s*\d{1,3}|[1-9][xX][xX]|\*|continue|dropped)?\s*$"

Q = Annotated[str | None, Query(description="a filter query (docs/filters.md), e.g. hook:pre status:4xx !modified")]


def searcher_of(context: WebContext) -> Searcher:
    """Redacted views from the shared cache; the outcome for the gateway --tyk-version names."""
    return Searcher(
        redactor=context.redactor,
        views=context.search_views,
        gateway=context.gateway,
        journeys=context.journeys,
        apis=context.catalog,
    )


async def capture_query(
    context: Context,
    q: Q = None,
    kind: Annotated[Literal["dispatch", "event"] | None, Query(description="same as q=kind:…")] = None,
    hook_type: Annotated[str | None, Query(description="same as q=hook:…")] = None,
    hook_name: Annotated[str | None, Query(description="same as q=name:…")] = None,
    api_id: Annotated[str | None, Query(description="same as q=api:…")] = None,
    method: Annotated[str | None, Query(description="same as q=method:…")] = None,
    status: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=STATUS_VALUE,
            description="same as q=status:… (404, 4xx, >=500, 400-499, *, continue, dropped)",
        ),
    ] = None,
    modified: Annotated[bool | None, Query(description="same as q=modified (or !modified)")] = None,
    errors: Annotated[bool | None, Query(description="same as q=error (or !error)")] = None,
    warnings: Annotated[bool | None, Query(description="same as q=warnings (or !warnings)")] = None,
    answered_by: Annotated[
        Literal["echo", "upstream", "mock", "fallback"] | None, Query(description="same as q=answered:…")
    ] = None,
) -> Matcher:
    shorthands: list[str] = []
    for name, value in (("kind", kind), ("hook", hook_type), ("name", hook_name), ("api", api_id),
                        ("method", method), ("answered", answered_by)):  # fmt: skip
        if value:
            shorthands.append(f"{name}:{quote(value)}")
    if status is not None and status.strip():
        shorthands.append(f"status:{status.strip().replace(' ', '')}")
    for flag, wanted in (("modified", modified), ("error", errors), ("warnings", warnings)):
        if wanted is not None:
            shorthands.append(flag if wanted else f"!{flag}")
    query = parse(q or "")
    if shorthands:
        extra = parse(" ".join(shorthands))
        assert extra.root is not None
        items: tuple[Node, ...] = (extra.root,) if query.root is None else (query.root, extra.root)
        query = ParsedQuery(query.text, items[0] if len(items) == 1 else And(items))
    if any(term.field == "journey" for term in query.terms()):
        await context.journeys.catch_up()  # journey: terms read the index
    return compile_query(query, searcher_of(context))


CaptureQuery = Annotated[Matcher, Depends(capture_query)]


def quote(value: str) -> str:
    """A value as a quoted query string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@router.get("/query/parse")
async def parse_query(q: Annotated[str, Query(description="the query to check")] = "") -> dict[str, Any]:
    """The syntax tree of a query (terms with their character positions), or a 400 saying where it is wrong."""
    return parse(q).as_json()


async def query_error(request: Request, exc: Exception) -> JSONResponse:
    """400 with where the query is wrong and what was expected there."""
    assert isinstance(exc, QueryError)
    return JSONResponse({"detail": f"invalid query: {exc}", "query_error": exc.as_json()}, status_code=400)
