"""Mints JWTs with jwcrypto, an implementation independent of keyway's.

Reads a JSON spec on stdin:
  {"keys": [{"kid", "kty": "RSA"|"EC"|"OKP"|"oct-from-public", "crv"?, "size"?, "of"?}],
   "tokens": [{"name", "key", "alg", "header"?: {...}, "claims": {...}}]}
"header" entries are merged into the protected header (null removes a field, e.g. kid).
"oct-from-public" is an HMAC key whose secret is the public key (PEM) of key "of": the
classic algorithm-confusion attack.
Prints {"jwks": {public keys}, "tokens": {name: compact JWS}}.
"""
import json
import sys

from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode, json_encode


def make_key(spec, keys):
    kty, kid = spec["kty"], spec["kid"]
    if kty == "RSA":
        return jwk.JWK.generate(kty="RSA", size=spec.get("size", 2048), kid=kid)
    if kty == "EC":
        return jwk.JWK.generate(kty="EC", crv=spec.get("crv", "P-256"), kid=kid)
    if kty == "OKP":
        return jwk.JWK.generate(kty="OKP", crv=spec.get("crv", "Ed25519"), kid=kid)
    if kty == "oct-from-public":
        pem = keys[spec["of"]].export_to_pem(private_key=False, password=None)
        return jwk.JWK(kty="oct", k=base64url_encode(pem), kid=kid)
    raise ValueError(kty)


def main():
    spec = json.load(sys.stdin)
    keys = {}
    for key_spec in spec["keys"]:
        keys[key_spec["kid"]] = make_key(key_spec, keys)
    public = [json.loads(key.export_public()) for key in keys.values() if key.get("kty") != "oct"]
    tokens = {}
    for token in spec["tokens"]:
        key = keys[token["key"]]
        header = {"alg": token["alg"], "kid": key.get("kid")}
        for name, value in token.get("header", {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        signer = jws.JWS(json.dumps(token["claims"]).encode())
        signer.allowed_algs = [token["alg"]]
        signer.add_signature(key, alg=token["alg"], protected=json_encode(header))
        tokens[token["name"]] = signer.serialize(compact=True)
    json.dump({"jwks": {"keys": public}, "tokens": tokens}, sys.stdout)


if __name__ == "__main__":
    main()
