"""Peer for `make bench-gateway`: the gateway's `GET /api/v1/models` written the way a Python
service would, with FastAPI, PyJWT and redis-py (asyncio, hiredis parser), served by uvicorn.

It does what our route does, in the same order:
1. the bearer token: the JOSE header (alg EdDSA, typ at+jwt, a well-formed kid, no key-bearing
   headers), the EdDSA signature against the auth service's JWKS, iss, aud, exp and nbf with 30 s
   leeway, the `typ` claim `access`, non-empty sub and jti;
2. revocation in Redis, one pipelined round trip: EXISTS <prefix>auth:revoked:<jti> and
   GET <prefix>auth:token_version:<sub> (the keys of crates/kit/src/auth/revocation.rs);
3. the sliding-window rate limit: the kit's Lua script itself (read from
   crates/kit/src/ratelimit/script.rs, so the two cannot drift), one EVALSHA per request with a
   unique member, and the RateLimit-* headers; 429 when refused;
4. the body {"models": [...], "default": ...} built from the fake Ollama's /api/tags the way
   crates/llm/src/ollama/wire.rs maps it, serialized per request.

Differences, none on the measured path: the JWKS and the model list are fetched once at startup
(ours caches both and refreshes them), an unknown kid is refused without a JWKS refresh, and the
rate-limit windows live under `<prefix>fastapi:` instead of `<prefix>gw:` so the two runs do not
share a window.

Configuration comes from the environment (bench/gateway.sh sets it from bench_server's output):
BENCH_AUTH_URL, BENCH_OLLAMA_URL, BENCH_MODEL, BENCH_ISSUER, BENCH_AUDIENCE, BENCH_REDIS_URL,
BENCH_REDIS_PREFIX, and optionally BENCH_RATE_LIMIT_PER_MINUTE (default 100000000).
"""
import contextlib
import itertools
import json
import math
import os
import pathlib
import re
import urllib.request
import uuid

import jwt
import redis.asyncio as redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

AUTH_URL = os.environ["BENCH_AUTH_URL"]
OLLAMA_URL = os.environ["BENCH_OLLAMA_URL"]
DEFAULT_MODEL = os.environ["BENCH_MODEL"]
ISSUER = os.environ["BENCH_ISSUER"]
AUDIENCE = os.environ["BENCH_AUDIENCE"]
REDIS_URL = os.environ["BENCH_REDIS_URL"]
REDIS_PREFIX = os.environ["BENCH_REDIS_PREFIX"]
RATE_LIMIT_PER_MINUTE = int(os.environ.get("BENCH_RATE_LIMIT_PER_MINUTE", "100000000"))
WINDOW_MS = 60_000
LEEWAY_S = 30
MAX_TOKEN_BYTES = 8 * 1024
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEY_BEARING_HEADERS = ("jku", "jwk", "x5u", "x5c", "crit")

SCRIPT_SOURCE = pathlib.Path(__file__).resolve().parents[2] / "crates/kit/src/ratelimit/script.rs"


def sliding_window_lua() -> str:
    """The kit's script text, taken from the Rust source."""
    source = SCRIPT_SOURCE.read_text()
    found = re.search(r'SLIDING_WINDOW_LUA: &str = r"(.*?)";', source, re.S)
    if found is None:
        raise RuntimeError(f"SLIDING_WINDOW_LUA not found in {SCRIPT_SOURCE}")
    return found.group(1)


def fetch_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def verification_keys() -> dict:
    """kid -> Ed25519 public key, from the auth service's JWKS."""
    keys = {}
    for jwk in fetch_json(f"{AUTH_URL}/.well-known/jwks.json")["keys"]:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="EdDSA").key
    return keys


def model_list() -> list:
    """The fake Ollama's models as our LlmClient lists them: name, size_bytes, family."""
    models = []
    for entry in fetch_json(f"{OLLAMA_URL}/api/tags")["models"]:
        family = (entry.get("details") or {}).get("family") or None
        models.append({"name": entry["name"], "size_bytes": entry.get("size"), "family": family})
    return models


KEYS = verification_keys()
MODELS = model_list()
LUA = sliding_window_lua()
INSTANCE_ID = uuid.uuid4().hex
member_numbers = itertools.count()
state = {}


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI):
    client = redis.Redis.from_url(REDIS_URL)
    state["redis"] = client
    state["sliding_window"] = client.register_script(LUA)
    yield
    await client.aclose()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


def problem(status: int, title: str, detail: str, headers: dict | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def unauthorized(detail: str) -> JSONResponse:
    challenge = 'Bearer error="invalid_token"' if detail != "missing bearer token" else "Bearer"
    return problem(401, "Unauthorized", detail, {"WWW-Authenticate": challenge})


def is_access_token_header_type(typ) -> bool:
    if not isinstance(typ, str):
        return False
    if typ[:12].lower() == "application/":
        typ = typ[12:]
    return typ.lower() == "at+jwt"


def verify(token: str):
    """The token's claims, or the reason it is refused."""
    if len(token) > MAX_TOKEN_BYTES:
        return None, "malformed token"
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return None, "malformed token"
    if header.get("alg") != "EdDSA":
        return None, "disallowed algorithm"
    if not is_access_token_header_type(header.get("typ")):
        return None, "wrong header type"
    if any(name in header for name in KEY_BEARING_HEADERS):
        return None, "forbidden header"
    kid = header.get("kid")
    if not isinstance(kid, str) or not KEY_ID.fullmatch(kid):
        return None, "missing or malformed kid"
    key = KEYS.get(kid)
    if key is None:
        return None, "unknown kid"
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway=LEEWAY_S,
            options={"require": ["exp", "nbf", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return None, "token expired"
    except jwt.InvalidTokenError as error:
        return None, f"invalid token: {error}"
    if claims.get("typ") != "access":
        return None, "wrong token type"
    if not claims.get("sub") or not claims.get("jti"):
        return None, "invalid claims"
    return claims, None


@app.get("/api/v1/models")
async def models(request: Request):
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() != "bearer " or not authorization[7:].strip():
        return unauthorized("missing bearer token")
    claims, refusal = verify(authorization[7:].strip())
    if refusal is not None:
        return unauthorized(refusal)
    subject = claims["sub"]

    client = state["redis"]
    pipeline = client.pipeline(transaction=False)
    pipeline.exists(f"{REDIS_PREFIX}auth:revoked:{claims['jti']}")
    pipeline.get(f"{REDIS_PREFIX}auth:token_version:{subject}")
    revoked, subject_version = await pipeline.execute()
    if revoked:
        return unauthorized("token revoked")
    if int(claims.get("ver", 0)) < int(subject_version or 0):
        return unauthorized("token revoked")

    kind = "svc" if claims.get("kind") == "service" else "user"
    window_key = f"{REDIS_PREFIX}fastapi:rl:default:{kind}:{subject}"
    member = f"{INSTANCE_ID}-{next(member_numbers)}"
    admitted, count, oldest_ms, now_ms = await state["sliding_window"](
        keys=[window_key], args=[RATE_LIMIT_PER_MINUTE, WINDOW_MS, member]
    )
    until_oldest_leaves_ms = max(0, WINDOW_MS - max(0, now_ms - oldest_ms))
    reset_after_s = max(1, math.ceil(until_oldest_leaves_ms / 1000))
    headers = {
        "RateLimit-Limit": str(RATE_LIMIT_PER_MINUTE),
        "RateLimit-Remaining": str(max(0, RATE_LIMIT_PER_MINUTE - count) if admitted == 1 else 0),
        "RateLimit-Reset": str(reset_after_s),
        "RateLimit-Policy": f"{RATE_LIMIT_PER_MINUTE};w={WINDOW_MS // 1000}",
    }
    if admitted != 1:
        headers["Retry-After"] = str(reset_after_s)
        detail = f"rate limit of {RATE_LIMIT_PER_MINUTE} requests per 60 s exceeded; retry in {reset_after_s} s"
        return problem(429, "Too Many Requests", detail, headers)
    return JSONResponse({"models": MODELS, "default": DEFAULT_MODEL}, headers=headers)
