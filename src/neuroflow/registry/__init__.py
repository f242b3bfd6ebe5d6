"""The model registry: aliases, the evidence-based promotion gate, the ledger, rollback.

Only `challenger` and `champion` aliases are used (no deprecated stages); their names and every
version tag live in names.py. `export` registers one version per model content and sets
`challenger` (register.py); `neuroflow promote` moves `champion` only through the gate (gate.py)
and records every decision in an append-only ledger of MLflow runs (ledger.py); `neuroflow
rollback` restores the previous champion from that ledger and marks the version it leaves, which
the gate then refuses unless overridden with a reason. Champion changes are serialised by a lock
plus a compare-and-set re-read of the alias (see ledger.py).
"""
