#!/usr/bin/env python3
"""Instructions per request, keyway against bare Pingora, counted by callgrind.

Wall-clock rates on a shared machine move by 20% between runs; instruction counts do not (the
same binary and inputs give the same count, whatever else the machine is doing). Each case runs
its proxy under `valgrind --tool=callgrind`, warms it up, zeroes the counters
(`callgrind_control -z`), sends REQUESTS requests one after another on one keep-alive
connection, dumps the counters and divides. Results are written beside the dumps, so
`callgrind_annotate` can show where a case's instructions go.

    python3 bench/instructions.py                     # cases 4p,4,4q,6,7, release build
    python3 bench/instructions.py --cases 4p,4 --requests 5000
    callgrind_annotate target/bench-instructions/4.out | head -60

Cases: 4p bare Pingora, 4 keyway pass-through, 4q the same with the access log off, 5 cached
converse token, 6 repeated RS256 JWT, 7 a new RS256 JWT per request (cache on, every token new),
8 one RS256 JWT with a bad signature sent again and again (answered 401).
"""
import argparse
import glob
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the fixtures and servers of the load benchmark)

CASES = {
    "4p": "bare Pingora pass-through (floor)",
    "4": "keyway pass-through",
    "4q": "keyway pass-through, access log off",
    "5": "keyway cached converse token",
    "6": "keyway repeated RS256 JWT",
    "7": "keyway new RS256 JWT per request",
    "8": "keyway repeated RS256 JWT, bad signature",
}
WARM_UP = 200


def wait_ready(port, path, deadline_seconds=120):
    deadline = time.time() + deadline_seconds
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answers on {port}")


def send(port, path, headers_for, count, expect):
    """`count` requests on one connection; every answer must have status `expect`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in range(count):
        connection.request("GET", path, headers=headers_for(n))
        response = connection.getresponse()
        response.read()
        if response.status != expect:
            raise RuntimeError(f"request {n} to {path}: status {response.status}, expected {expect}")
    connection.close()


def run_case(case, args, fixtures, out_dir):
    out_file = os.path.join(out_dir, f"{case}.out")
    for old in glob.glob(out_file + "*"):
        os.remove(old)
    port, admin = load.free_port(), load.free_port()
    if case == "4p":
        argv = [os.path.join(load.EXAMPLES, "bare_pingora"), str(port), str(fixtures["backend"])]
    else:
        conf = load.keyway_conf(fixtures["work"], port, admin, fixtures["backend"], fixtures["jwks"],
                                fixtures["password_hash"], 1_000_000, "false" if case == "4q" else "true")
        argv = [load.KEYWAY, "--config", conf, "run"]
    # Access-log lines go to a file, as a deployment's would (not a terminal).
    log = open(os.path.join(out_dir, f"{case}.log"), "w")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *argv],
        stdout=log, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(port, "/open/x")
        path, headers_for = request_for(case, port, fixtures)
        expect = 401 if case == "8" else 200
        send(port, path, headers_for, WARM_UP, expect)
        subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True)
        send(port, path, lambda n: headers_for(WARM_UP + n), args.requests, expect)
        subprocess.run(["callgrind_control", f"--dump={case}", str(process.pid)], check=True, capture_output=True)
        time.sleep(1)
        dumps = [p for p in glob.glob(out_file + "*") if p != out_file]
        total = sum(dump_total(p) for p in dumps)
    finally:
        os.killpg(process.pid, 9)
        process.wait()
        log.close()
    return {"case": case, "name": CASES[case], "requests": args.requests,
            "instructions_per_request": round(total / args.requests), "dumps": sorted(dumps)}


def dump_total(path):
    with open(path) as dump:
        for line in dump:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    return 0


def request_for(case, port, fixtures):
    """The path and the headers of request n for a case."""
    if case in ("4p", "4", "4q"):
        return "/open/x", lambda n: {}
    if case == "5":
        token = load.converse_tokens(port, 1)[0]
        return "/converse/x", lambda n: {"X-CONVERSE-TOKEN": token}
    if case == "6":
        return "/jwt/x", lambda n: {"Authorization": f"Bearer {fixtures['tokens'][0]}"}
    if case == "8":
        head, signature = fixtures["tokens"][0].rsplit(".", 1)
        tampered = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
        return "/jwt/x", lambda n: {"Authorization": f"Bearer {tampered}"}
    return "/jwt/x", lambda n: {"Authorization": f"Bearer {fixtures['tokens'][1 + n]}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="4p,4,4q,6,7")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", default="release", choices=["release", "debug"])
    parser.add_argument("--out", default=os.path.join(load.ROOT, "target", "bench-instructions"))
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    load.ensure_tools()
    load.use_profile(args.profile)
    os.makedirs(args.out, exist_ok=True)
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory() as work:
        private_pem, _, jwk = load.rsa_key()
        jwks = os.path.join(work, "jwks.json")
        json.dump({"keys": [jwk]}, open(jwks, "w"))
        needs_tokens = any(case in cases for case in ("6", "7", "8"))
        tokens = load.rs256_tokens(private_pem, WARM_UP + args.requests + 1) if needs_tokens else []
        backend_port = load.free_port()
        backend = load.start_backend(work, backend_port)
        fixtures = {"work": work, "backend": backend_port, "jwks": jwks, "tokens": tokens,
                    "password_hash": load.argon2_hash()}
        try:
            results = [run_case(case, args, fixtures, args.out) for case in cases]
        finally:
            backend.stop()
    floor = next((r["instructions_per_request"] for r in results if r["case"] == "4p"), None)
    for result in results:
        ratio = f"  {result['instructions_per_request'] / floor:.2f}x floor" if floor else ""
        print(f"{result['case']:>3} {result['name']:<42} {result['instructions_per_request']:>9} instructions/request{ratio}")
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}, out, indent=2)


if __name__ == "__main__":
    main()
