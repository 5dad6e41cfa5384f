"""What runs on a production node: the POSIX-sh supervisor `bin/xrel-node` (xrel-node.sh, contract in NODE.md)."""
