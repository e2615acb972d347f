"""Query parameters shared by every paginated list."""

from typing import Annotated

from fastapi import Query

MAX_PAGE_SIZE = 200
# Beyond this a list is not being paged through; also keeps the value inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")]
