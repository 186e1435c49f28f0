"""Redis string reads bounded in bytes: a value above its limit is never sent (a script checks its length)."""

from __future__ import annotations

from typing import Any

# STRLEN first, GET only within the limit; a key of another type (STRLEN fails) reads as absent
BOUNDED_GET = """
local out = {}
for i, key in ipairs(KEYS) do
  local size = redis.pcall('STRLEN', key)
  if type(size) == 'number' and size <= tonumber(ARGV[1]) then
    out[i] = redis.call('GET', key)
  else
    out[i] = false
  end
end
return out
"""


class BoundedValues:
    """GET and MGET whose answers hold no value above `limit` bytes (such a value reads as None)."""

    def __init__(self, redis: Any, limit: int) -> None:
        self.limit = limit
        self._script = redis.register_script(BOUNDED_GET)

    async def many(self, keys: list[Any]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._script(keys=keys, args=[self.limit])
        return [value if isinstance(value, bytes) else None for value in values]

    async def one(self, key: str) -> bytes | None:
        return (await self.many([key]))[0]
