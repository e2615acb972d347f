"""The ceiling: a bare FastAPI app with one endpoint returning a constant JSON body."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}
