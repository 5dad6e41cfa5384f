"""A real feed for the node agent's tests: a test CA, nginx from Debian serving `xrel publish dir:` output over
HTTPS on 127.0.0.1-3 (a 302 to another host as GitHub does, a redirect to plain http), dists made with xrel's
own dist code, the agent's BEAM files and a host `erl` to drive them, one fresh VM per call."""

from __future__ import annotations

import datetime
import grp
import ipaddress
import os
import pwd
import random
import re
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xrel.dist.layout import MANIFEST, SUMS, sums_text
from xrel.dist.make import sign_dist
from xrel.dist.manifest import SCHEMA_VERSION, manifest_text
from xrel.release.tarball import write_tarball
from xrel.storage.files import sha256_file
from xrel.targets import Target

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
ERL, ERLC = shutil.which("erl"), shutil.which("erlc")
ERTS = "13.1.5"


# -- a test CA ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the client is given
    other_ca: Path  # a CA that signed nothing the server shows
    cert: Path  # the server's certificate (IP entries 127.0.0.1 and 127.0.0.2) followed by nothing else
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(out: Path, ips: tuple[str, ...] = ("127.0.0.1", "127.0.0.2")) -> Pki:
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("xrel test feed CA")
    _other_key, other_cert = _ca("xrel test other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("xrel test feed")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(out / "ca.pem", out / "other-ca.pem", out / "server.pem", out / "server.key")
    pki.ca.write_bytes(_pem(ca_cert))
    pki.other_ca.write_bytes(_pem(other_cert))
    pki.cert.write_bytes(_pem(cert))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pki.key.chmod(0o600)
    return pki


# -- nginx over HTTPS -----------------------------------------------------------------------------------
NGINX_CONF = """\
daemon off;
user {user} {group};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format feed '$server_addr $status $body_bytes_sent "$request" "$http_range"';
    access_log {tmp}/access.log feed;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/json json; application/gzip gz; text/plain minisig; }}
    default_type application/octet-stream;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    server {{
        listen 127.0.0.1:{port} ssl;
        root {root};
        location ~ /\\. {{ deny all; }}
        # as GitHub sends asset downloads to another host: the same path there
        location /hop/ {{ return 302 https://127.0.0.2:{port}$request_uri; }}
        # a redirect to a host the certificate does not name
        location /hop3/ {{ return 302 https://127.0.0.3:{port}$request_uri; }}
        # a server that ignores Range requests (answers 200 with the whole file)
        location /norange/ {{ alias {root}/; max_ranges 0; }}
        # a redirect down to plain http (where the same files are served)
        location /plain/ {{ return 302 http://127.0.0.1:{http_port}$request_uri; }}
    }}
    server {{
        listen 127.0.0.2:{port} ssl;
        listen 127.0.0.3:{port} ssl;
        root {root};
        location ~ /\\. {{ deny all; }}
        location /hop/ {{ alias {root}/; }}
        location /hop3/ {{ alias {root}/; }}
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location /plain/ {{ alias {root}/; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Feed:
    port: int
    root: Path  # what nginx serves
    log: Path  # its access log: `<server_addr> <status> <bytes sent> "<request line>" "<Range>"`
    process: subprocess.Popen

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}/{path}".rstrip("/")

    def requests(self, pattern: str) -> list[tuple[str, int, int, str]]:
        """(server address, status, body bytes sent, Range header) of each logged request whose path matches the
        regular expression `pattern`, oldest first."""
        out = []
        for line in self.log.read_text().splitlines():
            m = re.fullmatch(r'(\S+) (\d+) (\d+) "GET (\S+) [^"]*" "([^"]*)"', line)
            if m and re.search(pattern, m[4]):
                out.append((m[1], int(m[2]), int(m[3]), m[5]))
        return out


def start_nginx(tmp: Path, pki: Pki) -> Feed:
    tmp.mkdir(parents=True, exist_ok=True)
    root = tmp / "www"
    root.mkdir()
    port, http_port = free_port(), free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, root=root, port=port, http_port=http_port, cert=pki.cert,
                                      key=pki.key, user=pwd.getpwuid(os.getuid()).pw_name,
                                      group=grp.getgrgid(os.getgid()).gr_name))
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 15
    while proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.3", port), timeout=1), \
                    socket.create_connection(("127.0.0.1", http_port), timeout=1):
                break
        except OSError:
            if time.time() > deadline:
                proc.terminate()
                raise RuntimeError("nginx did not listen within 15 s") from None
            time.sleep(0.05)
    if proc.poll() is not None:
        raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()}")
    # a TLS handshake against the test CA: the server is up and shows the certificate the tests expect
    context = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass
    return Feed(port, root, tmp / "access.log", proc)


# -- dists made by xrel's own code ---------------------------------------------------------------------
def release_tree(root: Path, version: str, payload: int, seed: str) -> Path:
    """A tiny release: start_erl.data naming `version`, and `payload` incompressible bytes."""
    files = {"bin/demo": b"#!/bin/sh\n", "releases/start_erl.data": f"{ERTS} {version}\n".encode(),
             f"releases/{version}/vm.args": b"-name demo\n", f"lib/demo-{version}/ebin/demo.app": b"{}\n",
             f"lib/demo-{version}/priv/blob": random.Random(seed).randbytes(payload)}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "bin/demo").chmod(0o755)
    return root


def make_dist(work: Path, key, version: str, app: str = "demo",
              targets: tuple[str, ...] = ("aarch64-linux-gnu", "x86_64-linux-gnu"),
              glibc_floor: str | None = None, comment_version: str | None = None, payload: int = 96 << 10) -> Path:
    """`dist/<version>/` as `xrel dist` lays it out (tarballs written by write_tarball, the manifest by
    manifest_text, SHA256SUMS, both signed by sign_dist). `glibc_floor` overrides every glibc entry's floor;
    `comment_version` signs with a trusted comment naming another version."""
    out = work / f"{app}-{version}-{len(list(work.glob('*'))) if work.exists() else 0}" / version
    out.mkdir(parents=True)
    entries, sums = [], {}
    for target_id in targets:
        target = Target.parse(target_id)
        tree = release_tree(out.parent / "rel" / target.id, version, payload, f"{app} {version} {target.id}")
        name = f"{app}-{version}-otp25-{target.id}.tar.gz"
        sha = write_tarball(tree, out.parent / "build" / name, 315532800)
        shutil.copyfile(out.parent / "build" / name, out / name)
        floor = (glibc_floor or "2.28") if target.libc == "glibc" else None
        entries.append({"target": target.id, "aliases": sorted(target.aliases), "os": target.os,
                        "arch": target.arch, "otp": "25.3", "erts": ERTS, "nif": "2.16", "elixir": None,
                        "libc": target.libc, "glibc_floor": floor, "macos_min": None, "file": name,
                        "size": (out / name).stat().st_size, "sha256": sha, "runtime": {}, "upgrades": []})
        sums[name] = sha
    manifest = {"schema_version": SCHEMA_VERSION, "app": app, "release": app, "version": version,
                "git_commit": None, "source_date_epoch": 315532800, "xrel": "test",
                "compiled_by": {"otp": "25.3", "elixir": None}, "targets": sorted(entries, key=lambda e: e["target"])}
    (out / MANIFEST).write_text(manifest_text(manifest))
    (out / SUMS).write_text(sums_text({**sums, MANIFEST: sha256_file(out / MANIFEST)}))
    sign_dist(out, key, app, comment_version or version)
    return out


# -- the agent in a host erl ---------------------------------------------------------------------------
def build_agent(out: Path) -> Path:
    """The agent's BEAM files, compiled by the host's erlc as prepare_agent compiles them."""
    from xrel.node.agent import sources

    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([ERLC, "+deterministic", "-o", str(out), *map(str, sources())], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return out


def term(value) -> str:
    """An Erlang term: str -> charlist, bytes -> binary, None -> undefined, dict -> map with atom keys, tuple ->
    tuple, list -> list."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{text}"'
    if isinstance(value, bytes):
        return "<<" + ",".join(map(str, value)) + ">>"
    if isinstance(value, dict):
        return "#{" + ", ".join(f"{k} => {term(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "{" + ", ".join(map(term, value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(term, value)) + "]"
    raise TypeError(value)


MARK = "XREL-RESULT "


def erl(beam: Path, expr: str, timeout: int = 60) -> list[str]:
    """Evaluate `expr` (an Erlang expression list whose value is a list of terms) in a fresh VM with ssl started;
    each term printed with io:format("~tp") on one line."""
    script = (f'{{ok, _}} = application:ensure_all_started(ssl), ok = io:setopts([{{encoding, unicode}}]), '
              f'Results = begin {expr} end, '
              f'[io:format("{MARK}~100000tp~n", [R]) || R <- Results], halt().')
    done = subprocess.run([ERL, "-noshell", "+pc", "unicode", "-pa", str(beam), "-eval", script],
                          capture_output=True, text=True, timeout=timeout)
    lines = [line[len(MARK):] for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise AssertionError(f"erl failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return lines


def unescape(text: str) -> str:
    """An Erlang string literal's contents as printed by ~tp."""
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), text)
