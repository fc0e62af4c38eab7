"""Numerics modes: ``native`` (the CPU's fastest kernels) and ``portable`` (the same bits on any x86-64).

The synthetic dictionaries and the references must come out byte-identical on another machine;
bulk capture and encoding keep native kernels and are compared with tolerances.
"""
