"""Instance federation policy: Mastodon's domain blocks, limited federation, account suspension.

Five modules in two layers (this file imports none of them, so that each sits in its own):

- ``matcher`` (mod rules): what a domain is, and the pure ``DomainPolicy`` that says
  whether a host is suspended, silenced or outside the allowlist.
- ``cache`` (mod rules): ``load_policy`` and the process-wide ``Blocklist`` that every
  door (the URL guard, the inbox, fan-out and delivery) asks through ``is_blocked``.
- ``store`` (mod actions): the one writer of blocks and allows. Each admin change is one
  transaction that records the audit log, bumps a version (other processes reload within
  seconds) and acts on what is already there: members from a suspended domain leave
  every group, their posts are hidden (kept for audit), queued deliveries to it are
  dropped; lifting the block restores the posts.
- ``effects`` (mod actions): ``reconcile``, those acts, the statements on other modules' tables.
- ``mastodon_csv`` (mod actions): Mastodon's blocklist CSV, parsed, imported, exported.
"""
