"""Refusals nobody can be named for: every one accounted for, the ledger's growth bounded
(docs/ledger.md, "Refusals under attack")."""
