"""Plain-text tables for benchmark rows."""
from __future__ import annotations


def format_table(rows: list[dict], columns: list[tuple[str, str, str]], derived: dict | None = None) -> str:
    """columns: (key, header, format); ``derived`` maps a key to a function of the row."""
    derived = derived or {}
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([fmt.format(derived[k](r) if k in derived else r.get(k, "")) for k, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
