"""`xrel dist` and `xrel verify`: a signed, reproducible directory of release tarballs, one per target.

layout.py names the files and writes/reads SHA256SUMS; manifest.py builds xrel-manifest.json (SCHEMA.md);
make.py builds a dist; verify.py checks one, from a directory or a URL.
"""

from xrel.dist.layout import MANIFEST, SUMS
from xrel.dist.make import DistResult, make_dist
from xrel.dist.verify import VerifyResult, verify_dist

__all__ = ["MANIFEST", "SUMS", "DistResult", "VerifyResult", "make_dist", "verify_dist"]
