#!/usr/bin/env python3
"""Mints an RS256 access token from the demo identity provider of the shipped config.toml.

The key pair in demo/ is a demonstration key, public in this repository: it is trusted only by
the shipped config's demo provider (customer "demo", issuer https://idp.demo.example). It signs
with jwcrypto, an implementation independent of keyway's.

    python3 demo/mint_token.py                       # sub alice, email alice@example.com
    python3 demo/mint_token.py --sub bob --email bob@example.com --minutes 5
"""
import argparse
import json
import os
import time

from jwcrypto import jwk, jwt

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "https://idp.demo.example"
AUDIENCE = "keyway-demo"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sub", default="alice")
    parser.add_argument("--email", default="alice@example.com")
    parser.add_argument("--name", default="Alice Example")
    parser.add_argument("--minutes", type=int, default=10, help="life of the token")
    args = parser.parse_args()
    with open(os.path.join(HERE, "idp-private-key.json")) as file:
        key = jwk.JWK(**json.load(file))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": args.sub, "email": args.email, "name": args.name, "iat": now, "exp": now + 60 * args.minutes}
    token = jwt.JWT(header={"alg": "RS256", "kid": key["kid"], "typ": "JWT"}, claims=claims)
    token.make_signed_token(key)
    print(token.serialize())


if __name__ == "__main__":
    main()
