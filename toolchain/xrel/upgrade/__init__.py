"""Hot upgrades, the build side: from a running release to the next one, an upgrade package (appups,
relup, the changed applications) in the layout release_handler unpacks, or the gate's reasons to restart.

facts.py reads a release on disk (its .rel, content hashes); gate.py decides hot or cold; package.py
stages and writes the package, with xrel_upgrade.erl (run by the host's erl, erlang.py) for appups,
relup and renamed versions; source.py finds the release to upgrade from. UPGRADE.md is the package format.
"""
