"""Which paper tables a study's kind (its spec's ``table``) shows, and building them."""
from __future__ import annotations

from typing import Callable

from e2gan.reporting.curves import steps_to_target_table
from e2gan.reporting.paper_tables.base_model import base_model_table
from e2gan.reporting.paper_tables.cost import training_cost_table
from e2gan.reporting.paper_tables.data_count import data_count_table
from e2gan.reporting.paper_tables.latency import latency_rows, latency_table
from e2gan.reporting.paper_tables.layers import layers_table
from e2gan.reporting.paper_tables.main import main_quality_table, per_concept_table
from e2gan.reporting.paper_tables.pareto import pareto_table
from e2gan.reporting.paper_tables.ranks import ranks_table
from e2gan.reporting.paper_tables.rate_choice import rate_choice_table
from e2gan.reporting.study_context import StudyContext
from e2gan.reporting.table import Table


BUILDERS: dict[str, list[Callable[[StudyContext], Table]]] = {
    "main": [main_quality_table, per_concept_table, training_cost_table, steps_to_target_table, latency_table],
    "base-model": [base_model_table, per_concept_table],
    "layers": [layers_table, per_concept_table],
    "ranks": [ranks_table, per_concept_table],
    "data-count": [data_count_table],
    "pareto": [pareto_table],
    "rate-sweep": [rate_choice_table, main_quality_table, per_concept_table],
}


def build_tables(ctx: StudyContext) -> list[Table]:
    """Every table of the study's kind; a latency table wherever a run has a latency record."""
    builders = list(BUILDERS.get(ctx.kind, [main_quality_table, per_concept_table]))
    if latency_table not in builders and latency_rows(ctx):
        builders.append(latency_table)
    return [b(ctx) for b in builders]
