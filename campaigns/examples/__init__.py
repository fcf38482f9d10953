"""Worked examples of extending the campaign engine, each laid out as another app would lay it out.

Nothing here is discovered by `autodiscover_modules`, which imports only `<installed app>.triggers`
and `<installed app>.steps`; the campaigns app imports each example explicitly in `ready()`.
See docs/extending.md.
"""
