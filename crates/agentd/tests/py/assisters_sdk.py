"""Drives agentd's Assisters agent API with the vendor's official Python SDK (`assisters` on
PyPI), changing nothing but its base_url, and prints what it saw as one JSON object for the
Rust test (crates/agentd/tests/it/assisters.rs) to check.

Usage: python3 assisters_sdk.py <server base url> <max-tier key> <free-tier key>

The goals are the test server's scripted agent's scripts (`emit:N` thoughts, `done:TEXT`).
A missing SDK is an error, not a skip: scripts/test.sh installs it.
"""

import json
import sys

from assisters import Assisters, AssistersAPIError, AuthError, NotFoundError
import assisters


def error_of(call):
    try:
        call()
    except AssistersAPIError as e:
        return {"class": type(e).__name__, "status": e.status, "type": e.type, "message": e.message}
    return None


def main():
    base, key, free_key = sys.argv[1], sys.argv[2], sys.argv[3]
    client = Assisters(api_key=key, base_url=f"{base}/v1")
    out = {"sdk_version": assisters.__version__}

    out["run"] = client.agent.run(query="emit:2;done:The answer from the SDK", mode="research", max_cycles=3)
    out["follow_up"] = client.agent.run(query="done:A follow-up", session_id=out["run"]["sessionId"])
    out["chat"] = client.agent.run(query="done:Hi", mode="chat")
    out["stream"] = list(client.agent.stream(query="emit:3;done:Streamed answer", mode="coding", max_cycles=8))
    out["stream_failure"] = list(client.agent.stream(query="emit:1;fail:boom"))

    out["bad_key"] = error_of(lambda: Assisters(api_key="not-a-key", base_url=f"{base}/v1").agent.run(query="done:x"))
    free = Assisters(api_key=free_key, base_url=f"{base}/v1")
    out["free_run"] = error_of(lambda: free.agent.run(query="done:x"))
    out["free_stream"] = error_of(lambda: list(free.agent.stream(query="done:x")))
    out["empty_query"] = error_of(lambda: client.agent.run(query=""))
    out["bad_cycles"] = error_of(lambda: list(client.agent.stream(query="done:x", max_cycles=9)))
    out["unknown_session"] = error_of(lambda: client.agent.run(query="done:x", session_id="0190b0d0-0000-7000-8000-000000000000"))
    # The SDK retries a 500 (three attempts in all) before raising.
    out["failed_run"] = error_of(lambda: client.agent.run(query="fail:the agent broke"))

    assert isinstance(out["bad_key"], dict) and out["bad_key"]["class"] == AuthError.__name__
    assert isinstance(out["unknown_session"], dict) and out["unknown_session"]["class"] == NotFoundError.__name__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
