"""Parameters many routes share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, Field, model_validator

NUL_REFUSED = "text may not contain the NUL character (\\u0000)"

# A row's id in the store: a positive 64-bit integer. A larger number is refused with 422
# before it reaches the database (SQLite cannot even bind it).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the id given in a listing")]
# The same, as a query parameter (a position to page from, say).
RowIdQuery = Annotated[int, Query(ge=1, le=2**63 - 1)]
# The same, inside a request body.
RowIdValue = Annotated[int, Field(ge=1, le=2**63 - 1)]
# The id of a row in a smaller table (loads, users): 32 bits on PostgreSQL.
SmallRowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the id given in a listing")]


def _without_nul(value: Any, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: {NUL_REFUSED}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _without_nul(key, where)
            _without_nul(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _without_nul(item, f"{where}.{index}")


class RequestBody(BaseModel):
    """A JSON request body of the API. No text in it may hold NUL: no store keeps it
    (PostgreSQL refuses it in text and JSON), so it is refused here, saying where."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _without_nul(data, "body")
        return data
