"""The ActivityPub protocol as a library: it knows no groups, inbox or moderation.

Policies (the domain blocklist, whether private addresses are allowed) arrive as
arguments, so every module here is testable without a database or a network.
"""
