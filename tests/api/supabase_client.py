"""The official Supabase client (supabase_auth), as a frontend's supabase-js would use it.

Usage:
  python supabase_client.py signup BASE ANON EMAIL PASSWORD NAME   -> {"user_id", "access_token", "confirmed"}
  python supabase_client.py anonymous BASE ANON NAME                -> {"user_id", "access_token", "confirmed"}
  python supabase_client.py confirm BASE SERVICE_KEY USER_ID       -> {"confirmed": true}
  python supabase_client.py list BASE SERVICE_KEY PAGE PER_PAGE     -> {"user_ids": [...]} (newest first)
Prints one JSON object.
"""
import json
import sys

from supabase_auth import SyncGoTrueClient


def client(base, key):
    return SyncGoTrueClient(
        url=f"{base}/auth/v1",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
        auto_refresh_token=False,
        persist_session=False,
    )


command, base = sys.argv[1], sys.argv[2]
if command == "signup":
    anon, email, password, name = sys.argv[3:7]
    res = client(base, anon).sign_up(
        {"email": email, "password": password, "options": {"data": {"full_name": name}}}
    )
    print(json.dumps({
        "user_id": res.user.id,
        "access_token": res.session.access_token if res.session else None,
        "confirmed": res.user.email_confirmed_at is not None,
    }))
elif command == "anonymous":
    anon, name = sys.argv[3:5]
    res = client(base, anon).sign_in_anonymously({"options": {"data": {"full_name": name}}})
    print(json.dumps({
        "user_id": res.user.id,
        "access_token": res.session.access_token,
        "confirmed": res.user.email_confirmed_at is not None,
    }))
elif command == "confirm":
    service_key, user_id = sys.argv[3:5]
    res = client(base, service_key).admin.update_user_by_id(user_id, {"email_confirm": True})
    print(json.dumps({"confirmed": res.user.email_confirmed_at is not None}))
elif command == "list":
    service_key, page, per_page = sys.argv[3:6]
    users = client(base, service_key).admin.list_users(page=int(page), per_page=int(per_page))
    print(json.dumps({"user_ids": [u.id for u in users]}))
else:
    sys.exit(f"unknown command {command}")
