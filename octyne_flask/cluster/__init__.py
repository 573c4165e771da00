"""The cluster view (extensions.md §G): nodes announce themselves through Redis and ``GET /nodes`` lists them all.

``announce.py`` keeps this node's ``octyne-node:<name>`` key alive, ``directory.py``
remembers what the other nodes announced and probes the static ``nodes`` entries
(Go Octyne nodes do not announce), ``cluster.py`` ties them to the config.
"""
