"""The cached pipeline: distil -> train the base -> adapt -> evaluate, each stage built once and keyed
by its configuration, so the CLI, the studies and the benchmarks all reuse what is on disk.

One module per stage: ``data`` (distilled pairs), ``base`` (the base model), ``adapt`` (one new
concept's run, evaluated into its result.json), ``evaluate`` (cached test- and val-split scores).
"""
