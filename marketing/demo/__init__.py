"""A believable demo shop generated from a seed: catalogue, customers, orders and behavioural events.

`store.generate_store` writes it to the database. The modules it draws on are pure and import no
Django: `seasons` (the calendar), `catalogue`, `people` (who the customers are), `behaviour` (what
they do) and `customers` (one customer end to end).
"""
