"""Business value: the task's value model for this version, against no model and against
the previous champion, in words and numbers."""

from __future__ import annotations

from mlplug.reporting import format as fmt
from mlplug.reporting import html, plots
from mlplug.reporting.context import ReportContext
from mlplug.reporting.html import Html
from mlplug.reporting.section import ReportSection, SectionOutput


class BusinessSection(ReportSection):
    name = "business"
    title = "Business value"
    order = 40

    def render(self, ctx: ReportContext) -> SectionOutput | None:
        value = ctx.business_value
        if value is None:
            return SectionOutput([html.note("The task reported no business value for this version.", "info")])
        unit = value.unit
        rows = f"{ctx.split_rows['holdout']:,} holdout rows" if "holdout" in ctx.split_rows else "the holdout"
        at = f" at the decision threshold {fmt.number(ctx.threshold, 3)}" if ctx.threshold is not None else ""
        gain = value.gain
        words = (
            f"On {rows}, the registered {ctx.candidate_kind or 'model'}{at} is worth "
            f"{fmt.number(value.value)} {unit}, against {fmt.number(value.no_model_value)} {unit} without "
            f"a model: {'a gain' if gain >= 0 else 'a loss'} of {fmt.number(abs(gain))} {unit}."
        )
        no_model = fmt.number(value.no_model_value)
        summary = f"business value: {fmt.number(value.value)} {unit}; no model {no_model} {unit}"
        champ = ctx.champion_value
        if champ is not None:
            diff = value.value - champ.value
            words += (
                f" The previous champion v{ctx.champion_version} is worth {fmt.number(champ.value)} "
                f"{champ.unit} {ctx.champion_value_basis}"
            )
            if champ.unit == unit:
                words += (
                    f": this version is {fmt.number(abs(diff))} {unit} {'better' if diff >= 0 else 'worse'}."
                )
            else:  # a value model that changed its unit cannot be subtracted
                words += "; the units differ, so the two are not compared."
            summary += f"; champion v{ctx.champion_version} {fmt.number(champ.value)} {champ.unit}"
        elif ctx.champion_version is None:
            words += " There was no champion to compare with."
        blocks: list[Html] = [html.paragraph(words)]
        if value.summary:
            blocks.append(html.note(f"The task's own summary: {value.summary}", "info"))
        labels = ["no model"]
        amounts = [value.no_model_value]
        if champ is not None:
            labels.append(f"champion v{ctx.champion_version}")
            amounts.append(champ.value)
        labels.append("this version")
        amounts.append(value.value)
        colors = [plots.COLORS[5], *([plots.COLORS[1]] if champ is not None else []), plots.COLORS[0]]
        blocks.append(
            html.gallery(
                [
                    plots.bar_chart(
                        labels,
                        amounts,
                        title="Business value on the holdout",
                        xlabel=f"value ({unit})",
                        colors=colors,
                        annotate=True,
                    )
                ]
            )
        )
        if value.details:
            rows_table = [
                {
                    "quantity": fmt.humanize(k),
                    "this version": v,
                    **({"champion": champ.details.get(k)} if champ else {}),
                }
                for k, v in value.details.items()
            ]
            blocks.append(html.heading("How the value is made up", 4))
            blocks.append(html.table(rows_table))
        return SectionOutput(blocks, summary=[summary])
