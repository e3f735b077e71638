"""The pipeline of the chaos run: scripted tasks and real offline research in one cluster.

Every process of a cluster must run the same pipeline (any of them may take any task over), so
one entry point serves both kinds, told apart by the query: ``units=N`` picks the scripted
`stepped` pipeline; any other query is researched by the real offline pipeline, its progress
paced (`paced_real`) so that faults land in the middle of it.
"""

from __future__ import annotations

from dr_testing.pipelines import paced_real, stepped
from jupyter_deepresearch.extension.models import ResearchResult
from jupyter_deepresearch.extension.research.context import ResearchContext


async def mixed(ctx: ResearchContext) -> ResearchResult:
    if "units=" in ctx.request.query:
        return await stepped(ctx)
    return await paced_real(ctx)
