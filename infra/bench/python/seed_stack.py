"""The seed's Python stack, for the start-up comparison: its imports and its app built, the
way a Lambda cold start would; prints {"rss_kib": N} once done (the bench times the process)."""
import json
import resource

from fastapi import FastAPI
from mangum import Mangum
from pydantic_settings import BaseSettings
from sse_starlette.sse import EventSourceResponse
import httpx
import letta_client
import supabase


class Settings(BaseSettings):
    letta_base_url: str = "http://127.0.0.1:8283"
    supabase_url: str = "http://127.0.0.1:9999"


settings = Settings()
app = FastAPI()
http = httpx.AsyncClient()


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/api/v1/chat/message")
async def message():
    async def events():
        yield {"event": "start", "data": "{}"}

    return EventSourceResponse(events())


handler = Mangum(app)
assert letta_client and supabase
print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
