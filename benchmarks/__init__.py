"""Benchmarks: the receiver and the operator measured beside what users would run instead.

Not tests: they assert nothing about time. `make bench-receiver` and `make bench-operator`
print a table and write it into docs/benchmarks.md.
"""
