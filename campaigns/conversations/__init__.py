"""The conversations stage: read what customers write, store it as an event, and act on it through campaigns.

`processing` classifies new inbound messages with the active intent model and starts the campaigns
whose `message_received` trigger matches; `actions` are what those campaigns (and people in the
inbox) do with a message: reply, hold promotional e-mail, suppress, flag for a person; `context`
is what a reply template sees; `steps` registers the steps that call the actions; `workflows`
installs the three shipped campaigns.
"""
