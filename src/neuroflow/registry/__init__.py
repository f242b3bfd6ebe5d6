"""The model registry: aliases, the evidence-based promotion gate, the ledger, rollback.

Only `challenger` and `champion` aliases are used (no deprecated stages). `export` sets
`challenger`; `neuroflow promote` moves `champion` only through the gate (gate.py) and records
every decision in an append-only ledger of MLflow runs (ledger.py); `neuroflow rollback` restores
the previous champion from that ledger. Champion changes are serialised by a lock plus a
compare-and-set re-read of the alias (see ledger.py).
"""
