"""The shareable one-time-notification sheet: one printable HTML page per item.

A citizen can open it on a phone, forward it, or print it at the kiosk and bring it to the
window, so it carries every field of the guide, the date it was made, and where to ask.
Every value is HTML-escaped: guides are imported from outside and must never inject markup.
The page loads nothing from elsewhere: no web fonts, scripts or images from a CDN (mainland
networks block many, and a kiosk may have no internet at all); a print stylesheet keeps it to A4.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from bot.answering import answers
from bot.knowledge.model import Guide

_STYLE = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif;
 margin:0 auto;max-width:800px;padding:16px;color:#111;line-height:1.6;font-size:16px}
h1{font-size:22px;margin:0 0 4px} .meta{color:#444;font-size:14px;margin-bottom:12px}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #999;padding:6px 8px;vertical-align:top;text-align:left}
th{width:7em;background:#f2f2f2;white-space:nowrap} ol{margin:0;padding-left:1.4em}
.note{margin-top:12px;font-size:14px;color:#333} .sample{border:2px solid #b00;padding:6px;color:#b00}
@media print{body{font-size:12pt;padding:0} .noprint{display:none} a{color:#000;text-decoration:none}}
@page{size:A4;margin:15mm}
"""


def _cell(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return escape(value).replace("\n", "<br>")
    return "<ol>" + "".join(f"<li>{escape(v)}</li>" for v in value) + "</ol>"


def render_sheet(guide: Guide, hotline: str, related: Sequence[Guide] = (), *, today: dt.date | None = None) -> str:
    """The printable page for ``guide``."""
    today = today or dt.date.today()
    rows: list[tuple[str, str | Sequence[str]]] = []
    if guide.department:
        rows.append(("办理部门", guide.department))
    if guide.item_type:
        rows.append(("事项类型", guide.item_type))
    if guide.service_objects:
        rows.append(("服务对象", "、".join(guide.service_objects)))
    rows.append(("受理条件", list(guide.conditions) or answers.aspect_text(guide, "conditions", hotline)))
    if guide.refusal_grounds:
        rows.append(("不予受理", list(guide.refusal_grounds)))
    rows.append(("申请材料", [answers.material_line(m) for m in guide.materials]
                 or answers.aspect_text(guide, "materials", hotline)))
    for aspect in ("time", "fee"):
        rows.append((answers.ASPECTS[aspect], answers.aspect_text(guide, aspect, hotline)))
    rows.append(("办理流程", list(guide.process) or answers.aspect_text(guide, "process", hotline)))
    for aspect in ("visits", "place", "online", "appointment", "phone"):
        rows.append((answers.ASPECTS[aspect], answers.aspect_text(guide, aspect, hotline)))
    if guide.results:
        rows.append(("办理结果", "、".join(guide.results)))
    if guide.legal_basis:
        rows.append(("办理依据", list(guide.legal_basis)))
    if related:
        rows.append(("通常还需要办", "、".join(g.title for g in related)))
    body = "".join(f"<tr><th scope=\"row\">{escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    sample = f'<p class="sample">{escape(answers.SAMPLE_NOTE)}</p>' if guide.sample else ""
    source = (f'<p class="note">原始指南：{escape(guide.source_url)}</p>' if guide.source_url else "")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(guide.title)} · 一次性告知单</title><style>{_STYLE}</style></head>
<body><main>
<h1>{escape(guide.title)}</h1>
<p class="meta">一次性告知单 · 生成日期 {today.isoformat()} · 事项编号 {escape(guide.id)}</p>
{sample}<table>{body}</table>
<p class="note">以上为办事指南的全部要点，请按清单一次备齐材料。如有疑问请拨打 {escape(hotline)}，
或到政务服务大厅“办不成事反映窗口”咨询。</p>{source}
<p class="noprint"><button type="button" onclick="window.print()">打印本页</button></p>
</main></body></html>
"""
