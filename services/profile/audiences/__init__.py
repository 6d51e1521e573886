"""Audiences: declarative rules over the golden record, events, scores and consents
(``rules.py``), evaluated per customer (``evaluate.py``), exported with identifiers raw or
hashed as ad platforms expect (``export.py``). Pure domain code: the store keeps membership
up to date in the transactions that change what the rules read."""
