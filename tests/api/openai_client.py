"""The official `openai` client (PyPI) against the backend's OpenAI-compatible routes.

Usage: openai_client.py BASE_URL KEY REVOKED_KEY BROKE_KEY. Sends "my name is Ada" (not
streamed), then "what is my name?" (streamed, with usage), lists the models, and tries a
revoked key and the key of a user whose budget is used up. Prints one JSON object of what the
client saw; the Rust test (tests/api/openai.rs) judges it.
"""

import json
import sys

import openai

base, key, revoked_key, broke_key = sys.argv[1:5]


def client(api_key):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=api_key, max_retries=0, timeout=120)


seen = {"version": openai.__version__}
plain = client(key).chat.completions.create(
    model="anything", messages=[{"role": "user", "content": "my name is Ada"}]
)
seen["plain"] = {
    "id": plain.id,
    "object": plain.object,
    "model": plain.model,
    "text": plain.choices[0].message.content,
    "role": plain.choices[0].message.role,
    "finish": plain.choices[0].finish_reason,
    "usage": plain.usage.model_dump() if plain.usage else None,
}

stream = client(key).chat.completions.create(
    model="anything",
    messages=[
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Nice to meet you."},
        {"role": "user", "content": "what is my name?"},
    ],
    stream=True,
    stream_options={"include_usage": True},
)
parts, chunks, finish, usage, ids = [], 0, None, None, set()
for chunk in stream:
    chunks += 1
    ids.add(chunk.id)
    if chunk.usage:
        usage = chunk.usage.model_dump()
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
seen["streamed"] = {"text": "".join(parts), "chunks": chunks, "ids": len(ids), "finish": finish, "usage": usage}

seen["models"] = [m.id for m in client(key).models.list()]


def refusal(api_key):
    try:
        client(api_key).chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "hello"}]
        )
        return {"raised": None}
    except openai.APIStatusError as e:
        return {"raised": type(e).__name__, "status": e.status_code, "code": e.code, "type": e.type}


seen["revoked"] = refusal(revoked_key)
seen["broke"] = refusal(broke_key)
print(json.dumps(seen))
