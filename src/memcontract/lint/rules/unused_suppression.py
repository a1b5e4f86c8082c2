"""A suppression suppresses nothing (MC902, unused-suppression).

What: ``# memcontract: ignore[CODE]`` on a line where no finding of that code is reported, or
naming a code that does not exist. Remove it (or fix the code).

Why: a stale suppression hides the next real finding on that line.
"""
