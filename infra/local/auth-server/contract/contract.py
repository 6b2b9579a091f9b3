"""Drives the local Supabase-Auth-compatible server with the official client, supabase_auth.

Usage: python contract.py BASE_URL ANON_KEY ALG
Sign up, sign in, get user, verify claims (JWKS for ES256), refresh, sign out, and the error
cases. Prints one line per check and exits non-zero on the first mismatch.
"""
import sys
import uuid

from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

base, anon, alg = sys.argv[1], sys.argv[2], sys.argv[3]


def client():
    return SyncGoTrueClient(
        url=f"{base}/auth/v1",
        headers={"apikey": anon, "Authorization": f"Bearer {anon}"},
        auto_refresh_token=False,
        persist_session=False,
    )


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}".rstrip())
    if not ok:
        sys.exit(1)


def api_error(fn):
    try:
        fn()
    except (AuthApiError, AuthWeakPasswordError) as e:
        return e
    return None


email = f"contract-{uuid.uuid4().hex[:10]}@example.com"
password = "correct-horse-battery"
c = client()

res = c.sign_up({"email": email, "password": password, "options": {"data": {"display_name": "Contract"}}})
check("sign_up returns a user and a session", res.user is not None and res.session is not None)
check("sign_up user fields", res.user.email == email and res.user.aud == "authenticated"
      and res.user.user_metadata.get("display_name") == "Contract", str(res.user.id))
user_id = res.user.id

res = c.sign_in_with_password({"email": email, "password": password})
session = res.session
check("sign_in_with_password gives a bearer session", session.token_type == "bearer" and session.expires_in > 0
      and session.refresh_token and session.expires_at)

got = c.get_user(session.access_token)
check("get_user returns the same user", got.user.id == user_id and got.user.identities
      and got.user.app_metadata.get("provider") == "email")

claims = c.get_claims(session.access_token)
header, payload = claims["headers"], claims["claims"]
check("get_claims header alg", header["alg"] == alg, str(header))
check("get_claims payload", payload["sub"] == user_id and payload["aud"] == "authenticated"
      and payload["role"] == "authenticated" and payload["iss"] == f"{base}/auth/v1" and payload.get("session_id"))
if alg == "ES256":
    # get_claims verified the signature with the key it fetched from the JWKS by kid.
    jwk = c._fetch_jwks(header["kid"], {"keys": []})
    check("JWKS publishes the signing key", jwk.get("kid") == header["kid"] and jwk.get("crv") == "P-256")

refreshed = c.refresh_session(session.refresh_token)
check("refresh_session rotates the refresh token", refreshed.session.refresh_token != session.refresh_token
      and refreshed.user.id == user_id)
err = api_error(lambda: client().refresh_session(session.refresh_token))
check("reusing a rotated refresh token is refused", err is not None and err.code == "refresh_token_already_used",
      getattr(err, "code", ""))

err = api_error(lambda: client().sign_in_with_password({"email": email, "password": "wrong-password"}))
check("wrong password -> invalid_credentials", err is not None and err.status == 400 and err.code == "invalid_credentials")
err = api_error(lambda: client().sign_in_with_password({"email": "nobody-" + email, "password": password}))
check("unknown email -> the same invalid_credentials", err is not None and err.status == 400 and err.code == "invalid_credentials")
err = api_error(lambda: client().sign_up({"email": email, "password": password}))
check("duplicate sign_up -> user_already_exists", err is not None and err.code == "user_already_exists")
err = api_error(lambda: client().sign_up({"email": "x" + email, "password": "short"}))
check("short password -> weak_password", isinstance(err, AuthWeakPasswordError) and err.status == 422
      and err.reasons == ["length"])

s = client()
s.sign_in_with_password({"email": email, "password": password})
token = s.get_session().access_token
s.sign_out()
err = api_error(lambda: client().get_user(token))
check("after sign_out the session's token is refused", err is not None and err.code == "session_not_found",
      getattr(err, "code", ""))

tampered = session.access_token[:-4] + ("AAAA" if not session.access_token.endswith("AAAA") else "BBBB")
err = api_error(lambda: client().get_user(tampered))
check("a tampered token is refused", err is not None and err.code == "bad_jwt")
print("contract: all checks passed")
