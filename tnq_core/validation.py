"""One line from a pydantic ValidationError, for configuration and pipeline files alike."""

from collections.abc import Collection

from pydantic import ValidationError


def location(loc: tuple, tags: Collection[str] = ()) -> str:
    """`stages[2].max_force` from pydantic's location tuple, leaving out union-member `tags` (e.g. stage kinds)."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item not in tags or not parts:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


def first_problem(err: ValidationError, tags: Collection[str] = (), top: str = "(top level)") -> str:
    """`where: reason` of the first problem, then how many more there are."""
    first = err.errors()[0]
    more = f" (and {err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
    return f"{location(first['loc'], tags) or top}: {first['msg']}{more}"
