"""Performance benchmarks: cost and speed of E²GAN against pix2pix and against the machine's limit.

Run them with ``make bench`` or ``python -m benchmarks.run --preset tiny``. Every ratio is measured
side by side in one run (the two sides interleaved), because absolute numbers on a shared machine
drift with its load; see benchmarks/README.md for what each benchmark measures and how.
"""
