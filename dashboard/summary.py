"""The last 30 days in figures: count and volume per status per currency, and a chart of them.

Figures come from ListTransactions (created in the window, newest first, up to
DASHBOARD_SUMMARY_MAX_ROWS); the dashboard keeps no payment data, so it counts each time it is
asked. The chart is an SVG drawn on the server: bars are plain shapes with classes (colours in
the stylesheet), so no script and no inline style are needed, and the same figures are in a
table for screen readers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dashboard.money import format_minor
from dashboard.views import STATUSES, TYPES
from payments.transaction.v1 import transaction_pb2 as pb

WINDOW_DAYS = 30
CHART_WIDTH = 640
LABEL_WIDTH = 110
BAR_HEIGHT = 14
ROW_GAP = 10
TITLE_HEIGHT = 28
BAR_SPACE = CHART_WIDTH - LABEL_WIDTH - 190  # room on the right for the figures


@dataclass
class Cell:
    """How many transactions of one type, status and currency, and their sum in minor units."""

    count: int = 0
    volume_minor: int = 0


@dataclass
class CurrencySummary:
    """Every (type, status) cell of one currency."""

    currency: str
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, kind: str, status: str) -> Cell:
        """The cell of `kind` and `status` (empty when none)."""
        return self.cells.get((kind, status), Cell())

    @property
    def largest(self) -> int:
        """The largest volume of any cell, which spans the full bar width."""
        return max((c.volume_minor for c in self.cells.values()), default=0)


@dataclass
class Summary:
    """The window's figures per currency, and whether the row cap cut it short."""

    currencies: list[CurrencySummary]
    rows: int
    truncated: bool


def summarize(transactions: Iterable[pb.Transaction], *, max_rows: int) -> Summary:
    """Count and add up `transactions` (at most `max_rows` of them)."""
    by_currency: dict[str, CurrencySummary] = {}
    rows, truncated = 0, False
    for tx in transactions:
        if rows >= max_rows:
            truncated = True
            break
        rows += 1
        summary = by_currency.setdefault(tx.currency, CurrencySummary(tx.currency))
        key = (TYPES.get(tx.type, "UNKNOWN"), STATUSES.get(tx.status, "UNKNOWN"))
        cell = summary.cells.setdefault(key, Cell())
        cell.count += 1
        cell.volume_minor += tx.amount_minor
    ordered = sorted(
        by_currency.values(), key=lambda s: (-sum(c.count for c in s.cells.values()), s.currency)
    )
    return Summary(ordered, rows, truncated)


@dataclass(frozen=True)
class Bar:
    """One bar of the chart, in SVG user units."""

    kind: str  # PAYMENT or REFUND: the bar's class
    x: int
    y: int
    width: int
    height: int
    label: str  # the figures, at the bar's end
    label_x: int


@dataclass(frozen=True)
class Row:
    """One status of one currency: its name and its bars."""

    status: str
    label_y: int
    bars: list[Bar]


@dataclass(frozen=True)
class Panel:
    """The chart of one currency."""

    currency: str
    title_y: int
    rows: list[Row]


@dataclass(frozen=True)
class Chart:
    """The whole SVG: its size and a panel per currency."""

    width: int
    height: int
    panels: list[Panel]
    description: str


def chart(summary: Summary, locale: str) -> Chart:
    """Geometry of the summary chart: per currency, a bar per type for each status that has any."""
    panels: list[Panel] = []
    y = 0
    for cur in summary.currencies:
        title_y = y + 18
        y += TITLE_HEIGHT
        rows: list[Row] = []
        largest = cur.largest or 1
        for status in STATUSES.values():
            kinds = [kind for kind in ("PAYMENT", "REFUND") if cur.cell(kind, status).count]
            if not kinds:
                continue
            bars: list[Bar] = []
            for offset, kind in enumerate(kinds):
                cell = cur.cell(kind, status)
                width = max(1, round(BAR_SPACE * cell.volume_minor / largest))
                noun = kind.lower() + ("s" if cell.count != 1 else "")
                label = f"{format_minor(cell.volume_minor, cur.currency, locale)} · {cell.count} {noun}"
                bar_y = y + offset * (BAR_HEIGHT + 2)
                bars.append(Bar(kind, LABEL_WIDTH, bar_y, width, BAR_HEIGHT, label, LABEL_WIDTH + width + 6))
            rows.append(Row(status, y + BAR_HEIGHT - 3, bars))
            y += len(kinds) * (BAR_HEIGHT + 2) + ROW_GAP
        panels.append(Panel(cur.currency, title_y, rows))
        y += ROW_GAP
    total = sum(c.count for s in summary.currencies for c in s.cells.values())
    description = (
        f"Volume and count of payments and refunds per status, per currency, over the last {WINDOW_DAYS}"
        f" days: {total} transactions in {len(summary.currencies)} currencies."
    )
    return Chart(CHART_WIDTH, max(y, 40), panels, description)
