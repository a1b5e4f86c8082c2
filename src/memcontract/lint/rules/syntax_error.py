"""A Python file does not parse (MC900, syntax-error).

What: the file is not valid Python for the interpreter running the linter, so no other rule can
check it. The message is the parser's.

Why: a file the linter cannot read is a file it cannot vouch for; it is reported rather than
skipped, and it cannot be suppressed.
"""
