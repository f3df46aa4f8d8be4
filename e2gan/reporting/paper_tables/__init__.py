"""The paper's tables, one small builder per table (like a study spec); ``registry`` maps a study's
kind to its builders.

Every quality or cost cell is the metric averaged over the held-out concepts per seed, then
mean ± 95% CI (Student t) over seeds, with N; missing seeds are named in the cell. Every table
states its protocol, and shows the paper's number beside ours where the spec's ``[paper]`` has
one, in columns or rows marked as the paper's.
"""
