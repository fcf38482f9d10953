"""Segments: rules a marketer edits, compiled to one SQL query, refreshed as a diff.

`registry` holds the rule types (built-ins live in `rule_types/`, one file each); `compiler`
turns a segment's rules into one `Q` over customers; `reference` evaluates the same rules in
plain Python, the oracle the SQL is tested against; `refresh` stores membership and records who
entered and left.
"""
