"""Messages customers send the shop: read from the API and from inbound e-mail, cleaned, matched and stored.

`text` reduces HTML and cuts quoted replies and signatures; `mail` reads an e-mail and tells mail
that must never be answered automatically; `store` validates and stores. Understanding and acting
on messages is the conversations stage of `campaigns`, which `marketing` never imports.
"""
