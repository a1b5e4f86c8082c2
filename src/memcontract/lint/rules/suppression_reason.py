"""A suppression gives no reason (MC901, suppression-without-reason).

What: ``# memcontract: ignore[MC003]`` with nothing after it. Write why the finding does not
apply: ``# memcontract: ignore[MC003] rows is checked against MAX_ROWS above``. The finding is
still suppressed; this one takes its place until the reason is written.

Why: a suppression outlives the code it was written for; its reason is what lets a reviewer
tell whether it still holds (staticcheck requires one for the same reason).
"""
