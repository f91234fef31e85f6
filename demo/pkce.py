#!/usr/bin/env python3
"""Prints a fresh PKCE pair (RFC 7636, S256) as shell assignments:

    eval "$(python3 demo/pkce.py)"    # sets VERIFIER and CHALLENGE
"""
import base64
import hashlib
import secrets

verifier = secrets.token_urlsafe(32)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
print(f"VERIFIER={verifier}")
print(f"CHALLENGE={challenge}")
