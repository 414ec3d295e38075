"""The cluster rehearsal: the services a cluster has, each a real server on 127.0.0.1, the
compiled pipeline run with every task in a container of the component image (pulled by digest
from a local registry), then the serving image answering requests. See ``docs/rehearsal.md``.

``python -m kaizen.rehearsal`` (``make rehearsal``) is the entry point; nothing imports this
package.
"""
