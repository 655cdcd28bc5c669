"""The summary of a population run: counts by decision, route and category, the top rules and
missing answers, as a terminal table and as a self-contained HTML page with inline SVG charts
(no scripts, no external assets; every chart also given as a table, for screen readers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ketascreen.batch.compiler import DECISIONS, WORD, Compiler
from ketascreen.batch.engines import Runner
from ketascreen.core.model import ROUTES

DECISION_LABELS = {
    "eligible": "Eligible",
    "eligible_with_precautions": "Eligible with precautions",
    "needs_evaluation": "Needs evaluation",
    "incomplete": "Incomplete (answers missing)",
    "defer": "Defer",
    "not_recommended": "Not recommended",
}
# Colour-blind-safe palette (Okabe-Ito), one per decision.
DECISION_COLOURS = {
    "eligible": "#009E73",
    "eligible_with_precautions": "#56B4E9",
    "needs_evaluation": "#E69F00",
    "incomplete": "#999999",
    "defer": "#D55E00",
    "not_recommended": "#CC79A7",
}
ROUTE_LABELS = {"iv": "IV infusion", "im": "Intramuscular", "intranasal": "Esketamine nasal spray",
                "oral": "Oral or sublingual"}


@dataclass
class Summary:
    total: int
    screened: int
    invalid: int
    urgent: int
    decisions: list[tuple[str, int]]
    routes: dict[str, list[tuple[str, int]]]
    categories: list[tuple[str, int]]
    rules: list[tuple[str, str, str, int]]  # id, severity, title, people
    missing: list[tuple[str, bool, int]]  # answer (items as []), blocking, people
    kb_version: str
    kb_sha256: str
    protocol: str
    engine: str = ""
    notes: list[str] = field(default_factory=list)

    def share(self, n: int) -> str:
        return f"{100 * n / self.screened:.1f}%" if self.screened else "-"


def summarise(runner: Runner, compiler: Compiler, top: int = 15) -> Summary:
    ckb = compiler.ckb
    # Decisions, routes and urgency: one pass, grouped (a few hundred groups).
    total = invalid = urgent = 0
    counts: dict[str, int] = {}
    found: dict[str, dict[str, int]] = {q: {} for q in ROUTES}
    route_cols = ", ".join(f"route_{q}" for q in ROUTES)
    for decision, *per_route, is_urgent, ok, n in runner.rows(
            f"SELECT decision, {route_cols}, urgent, ok, count(*) FROM (SELECT decision, "
            f"{route_cols}, urgent, CASE WHEN error IS NULL THEN 1 ELSE 0 END AS ok FROM "
            f"kx_output) AS o GROUP BY decision, {route_cols}, urgent, ok"):
        n = int(n)
        total += n
        if is_urgent:
            urgent += n
        if not ok:
            invalid += n
            continue
        counts[decision] = counts.get(decision, 0) + n
        for q, d in zip(ROUTES, per_route, strict=True):
            found[q][d] = found[q].get(d, 0) + n
    decisions = [(d, counts.get(d, 0)) for d in DECISIONS]
    routes: dict[str, list[tuple[str, int]]] = {
        q: [(d, found[q].get(d, 0)) for d in DECISIONS] for q in ROUTES}
    # Findings per rule and per category, from the findings bit masks (one bit per rule, in
    # the findings order): integer sums, no lists.
    order = compiler.order_rules()
    bit = {r.id: i for i, r in enumerate(order)}

    def has(ids: list[str]) -> str:
        """1 for a person with a finding among ``ids``, else 0 (the words are never negative)."""
        words: dict[int, int] = {}
        for rid in ids:
            words[bit[rid] // WORD] = words.get(bit[rid] // WORD, 0) | (1 << (bit[rid] % WORD))
        return "sign(" + " | ".join(f"(_rw{w} & {m})" for w, m in words.items()) + ")"

    cats: dict[str, list[str]] = {}
    for r in order:
        cats.setdefault(r.category, []).append(r.id)
    words = (len(order) + WORD - 1) // WORD or 1
    runner.table("kx_findings", f"SELECT {', '.join(f'_rw{w}' for w in range(words))} FROM "
                 "kx_output WHERE error IS NULL")
    # People per rule: the words cut in 16-bit pieces, each piece's values counted (few
    # distinct ones), then each value's bits added up.
    per_rule = [0] * len(order)
    pieces = " UNION ALL ".join(
        f"SELECT {w * 4 + k} AS piece, (_rw{w} >> {16 * k}) & 65535 AS v, count(*) AS n FROM "
        f"kx_findings GROUP BY (_rw{w} >> {16 * k}) & 65535"
        for w in range(words) for k in range(4) if w * WORD + 16 * k < len(order))
    for piece, v, n in runner.rows(pieces):
        first = int(piece) // 4 * WORD + int(piece) % 4 * 16
        value = int(v)
        for j in range(min(16, WORD - int(piece) % 4 * 16)):
            if (value >> j) & 1 and first + j < len(order):
                per_rule[first + j] += int(n)
    per_cat = [int(n or 0) for n in runner.rows(
        "SELECT " + ", ".join(f"sum({has(ids)})" for ids in cats.values()) + " FROM kx_findings")[0]]
    rules = sorted(((r.id, str(r.severity), r.title, n)
                    for r, n in zip(order, per_rule, strict=True) if n),
                   key=lambda x: (-x[3], x[0]))[:top]
    categories = sorted(((c, n) for c, n in zip(cats, per_cat, strict=True) if n),
                        key=lambda x: (-x[1], x[0]))
    missing = sorted(_missing(runner, compiler).items(),
                     key=lambda x: (-x[1], x[0][0], x[0][1]))[:top]
    return Summary(
        total=total, screened=total - invalid, invalid=invalid, urgent=urgent,
        decisions=decisions, routes=routes, categories=categories, rules=rules,
        missing=[(f, b, n) for (f, b), n in missing], kb_version=ckb.kb.version,
        kb_sha256=ckb.kb.sha256, protocol=ckb.protocol_info.name, engine=runner.dialect)


def _missing(runner: Runner, compiler: Compiler) -> dict[tuple[str, bool], int]:
    """People per missing answer (item paths with ``[]``), among those screened."""
    out: dict[tuple[str, bool], int] = {}
    plan = compiler.missing_counts()
    if plan is None:  # read every person's list
        for f, b, n in runner.rows(
                "SELECT f, b, count(DISTINCT k) FROM (SELECT k, regexp_replace(m.field, "
                "'\\[[0-9]+\\]', '[]', 'g') AS f, m.blocking AS b FROM (SELECT _key AS k, "
                "unnest(missing) AS m FROM kx_output WHERE error IS NULL) AS u) AS v "
                "GROUP BY f, b"):
            out[(str(f), bool(b))] = int(n)
        return out
    # The static answers are the same for everyone with the same signature; item answers
    # are counted once per person and slot. No item path can coincide with another answer.
    static_sql, item_sql, named = plan
    for f, b, n in runner.rows(static_sql):
        out[(str(f), bool(b))] = int(n)
    for key, n in zip(named, runner.rows(item_sql)[0], strict=True):
        if n:
            out[key] = out.get(key, 0) + int(n)
    return out


def render_table(summary: Summary) -> Any:
    """The summary as Rich renderables (for the terminal)."""
    from rich.console import Group
    from rich.table import Table

    head = Table(title=f"Population screening: {summary.total:,} people", show_header=True)
    head.add_column("decision")
    head.add_column("people", justify="right")
    head.add_column("share", justify="right")
    for d, n in summary.decisions:
        head.add_row(DECISION_LABELS[d], f"{n:,}", summary.share(n))
    head.add_row("urgent (needs attention today)", f"{summary.urgent:,}", summary.share(summary.urgent))
    if summary.invalid:
        head.add_row("invalid input (not screened)", f"{summary.invalid:,}", "")
    cats = Table(title="People with a finding, by category")
    cats.add_column("category")
    cats.add_column("people", justify="right")
    for c, n in summary.categories:
        cats.add_row(c.replace("_", " "), f"{n:,}")
    rules = Table(title="Top rules")
    for col in ("rule", "severity", "people"):
        rules.add_column(col, justify="right" if col == "people" else "left")
    for rid, sev, _title, n in summary.rules:
        rules.add_row(rid, sev, f"{n:,}")
    return Group(head, cats, rules)


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Population screening summary</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1a1a1a;line-height:1.5}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}
th,td{border-bottom:1px solid #ccc;padding:.3rem .5rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.kpi{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.kpi div{border:1px solid #ccc;border-radius:.4rem;padding:.6rem 1rem;min-width:9rem}
.kpi strong{display:block;font-size:1.4rem}
svg text{font-size:12px;fill:#1a1a1a}
.note{color:#444;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
</style>
</head>
<body>
<main>
<h1>Population screening summary</h1>
<p class="note">Knowledge base {{ s.kb_version }} (sha256 <code>{{ s.kb_sha256[:16] }}…</code>),
protocol {{ s.protocol }}, engine {{ s.engine }}, generated {{ generated }}.
This summary supports clinical and population planning; it is not a diagnosis, and a licensed
clinician decides for each person.</p>
<div class="kpi" role="list">
<div role="listitem"><strong>{{ "{:,}".format(s.total) }}</strong>people</div>
<div role="listitem"><strong>{{ "{:,}".format(s.screened) }}</strong>screened</div>
<div role="listitem"><strong>{{ "{:,}".format(s.urgent) }}</strong>urgent (attention today)</div>
<div role="listitem"><strong>{{ "{:,}".format(s.invalid) }}</strong>invalid input</div>
</div>

<h2 id="decisions">Decisions</h2>
{{ bars(decision_rows, "decisions-chart", "People by decision") }}
<table><caption>People by decision</caption>
<thead><tr><th scope="col">decision</th><th scope="col" class="n">people</th>
<th scope="col" class="n">share</th></tr></thead>
<tbody>
{% for d, n in s.decisions %}<tr><td>{{ labels[d] }}</td>
<td class="n">{{ "{:,}".format(n) }}</td><td class="n">{{ s.share(n) }}</td></tr>
{% endfor %}</tbody>
</table>

<h2 id="routes">Decisions by route</h2>
{{ stacked }}
<table><caption>People by route and decision</caption>
<thead><tr><th scope="col">route</th>
{% for d in decisions %}<th scope="col" class="n">{{ labels[d] }}</th>{% endfor %}</tr></thead>
<tbody>
{% for q, rows in s.routes.items() %}<tr><th scope="row">{{ route_labels[q] }}</th>
{% for d, n in rows %}<td class="n">{{ "{:,}".format(n) }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>

<h2 id="categories">People with a finding, by category</h2>
{{ bars(category_rows, "categories-chart", "People with a finding, by category") }}
<table><caption>People with at least one finding in the category</caption>
<thead><tr><th scope="col">category</th><th scope="col" class="n">people</th>
<th scope="col" class="n">share</th></tr></thead>
<tbody>
{% for c, n in s.categories %}<tr><td>{{ c.replace("_", " ") }}</td>
<td class="n">{{ "{:,}".format(n) }}</td><td class="n">{{ s.share(n) }}</td></tr>
{% endfor %}</tbody>
</table>

<h2 id="rules">Top rules</h2>
<table><caption>The rules that fired for the most people</caption>
<thead><tr><th scope="col">rule</th><th scope="col">severity</th><th scope="col">title</th>
<th scope="col" class="n">people</th></tr></thead>
<tbody>
{% for rid, sev, title, n in s.rules %}<tr><td><code>{{ rid }}</code></td><td>{{ sev }}</td>
<td>{{ title }}</td><td class="n">{{ "{:,}".format(n) }}</td></tr>
{% endfor %}</tbody>
</table>

<h2 id="missing">Answers most often missing</h2>
<table><caption>Answers to ask (blocking ones can make a decision incomplete)</caption>
<thead><tr><th scope="col">answer</th><th scope="col">blocking</th>
<th scope="col" class="n">people</th></tr></thead>
<tbody>
{% for f, b, n in s.missing %}<tr><td><code>{{ f }}</code></td><td>{{ "yes" if b else "no" }}</td>
<td class="n">{{ "{:,}".format(n) }}</td></tr>
{% endfor %}</tbody>
</table>
{% if s.notes %}<h2>Notes on the input</h2>
<ul>{% for n in s.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
</main>
</body>
</html>
"""


def _bars(rows: list[tuple[str, int, str]], ident: str, title: str) -> str:
    """A horizontal bar chart as inline SVG (labels, values, an accessible title)."""
    from markupsafe import Markup, escape

    width, label_w, bar_h, gap = 640, 230, 22, 6
    top = max((n for _l, n, _c in rows), default=0) or 1
    height = len(rows) * (bar_h + gap) + gap
    parts = [f'<svg id="{ident}" role="img" aria-labelledby="{ident}-t" width="100%" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{ident}-t">{escape(title)}</title>']
    for i, (label, n, colour) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = int((width - label_w - 90) * n / top)
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h - 6}" text-anchor="end">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" '
                     f'fill="{colour}"><title>{escape(label)}: {n:,}</title></rect>')
        parts.append(f'<text x="{label_w + max(w, 1) + 6}" y="{y + bar_h - 6}">{n:,}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _stacked(summary: Summary) -> str:
    from markupsafe import Markup, escape

    width, label_w, bar_h, gap = 640, 190, 24, 8
    rows = list(summary.routes.items())
    legend_h = 22 * ((len(DECISIONS) + 2) // 3)
    height = len(rows) * (bar_h + gap) + gap + legend_h + 10
    parts = [f'<svg role="img" aria-labelledby="routes-t" width="100%" viewBox="0 0 {width} '
             f'{height}" xmlns="http://www.w3.org/2000/svg">',
             '<title id="routes-t">Share of each decision, by route</title>']
    for i, (q, counts) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        total = sum(n for _d, n in counts) or 1
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h - 7}" text-anchor="end">'
                     f'{escape(ROUTE_LABELS[q])}</text>')
        x = float(label_w)
        for d, n in counts:
            w = (width - label_w - 10) * n / total
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                             f'fill="{DECISION_COLOURS[d]}"><title>{escape(ROUTE_LABELS[q])}, '
                             f'{escape(DECISION_LABELS[d])}: {n:,}</title></rect>')
            x += w
    y0 = gap + len(rows) * (bar_h + gap) + 6
    for i, d in enumerate(DECISIONS):
        x = 10 + (i % 3) * 210
        y = y0 + (i // 3) * 22
        parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{DECISION_COLOURS[d]}"/>')
        parts.append(f'<text x="{x + 20}" y="{y + 12}">{escape(DECISION_LABELS[d])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def render_html(summary: Summary) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(_TEMPLATE)
    decision_rows = [(DECISION_LABELS[d], n, DECISION_COLOURS[d]) for d, n in summary.decisions]
    category_rows = [(c.replace("_", " "), n, "#0072B2") for c, n in summary.categories]
    return template.render(
        s=summary, labels=DECISION_LABELS, route_labels=ROUTE_LABELS, decisions=DECISIONS,
        bars=_bars, decision_rows=decision_rows, category_rows=category_rows,
        stacked=_stacked(summary),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def write_html(summary: Summary, path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(summary), encoding="utf-8")
