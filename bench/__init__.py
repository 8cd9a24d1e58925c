"""Benchmarks: what the platform achieves against what the APIs allow (`python -m bench`).

They measure and print; tests never assert timings (DESIGN.md, performance stance).
"""
