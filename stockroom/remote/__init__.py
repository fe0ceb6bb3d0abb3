"""Stock remotes: where a team's stock data lives, and how to reach it.

* :mod:`~stockroom.remote.url`: parsing remote URLs, refusing embedded secrets;
* :mod:`~stockroom.remote.config`: the remotes a repository knows (tracked
  ``.stockremotes`` file, or ``.git/config`` for ``--local`` ones);
* :mod:`~stockroom.remote.objects`: the small object interface, with a
  directory backend and an S3 backend.

The layout of the objects and the transfer itself live in
:mod:`stockroom.store.transfer` (the only code that reads Hangar records).
"""
