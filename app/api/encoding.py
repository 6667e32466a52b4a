"""The JSON the API answers with: one encoder for responses and live updates' frames."""

from __future__ import annotations

import json

import orjson


def json_bytes(data: object) -> bytes:
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:  # lone surrogates echoed back from the input
        return json.dumps(data, default=str).encode()
