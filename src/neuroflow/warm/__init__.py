"""Warm stage processes: a server per environment that imports torch, pandas, Great
Expectations and MLflow once and forks each pipeline stage DVC runs, in any project, instead of
every stage importing them.

`registry` names servers and decides when one may start, `client` hands a stage command to a
server (or says to run it here), `server` preloads and forks. Standard library only outside
`server`, so a stage command that finds no server costs nothing extra.
"""
