"""Print numbers for people: bytes in binary units, and small aligned tables."""


# --8<-- [start:format_bytes]
def format_bytes(n: int) -> str:
    """1536 -> '1.50 KiB'. Binary units (KiB = 1024 B); exact below 1 KiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.2f} {unit}"
    raise AssertionError("unreachable")
# --8<-- [end:format_bytes]


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table for doctest output: columns right-aligned except
    the first."""
    cells = [[str(h) for h in headers]]
    cells += [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        first, *rest = row
        padded = [first.ljust(widths[0])]
        padded += [c.rjust(w) for c, w in zip(rest, widths[1:])]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
