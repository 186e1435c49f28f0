"""MCP constants in one place: protocol versions, method, header and `_meta` names, error codes."""

from __future__ import annotations

# -- protocol versions ------------------------------------------------------------------------------

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
MODERN_VERSION = "2026-07-28"
MODERN_VERSIONS = (MODERN_VERSION,)
KNOWN_VERSIONS = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)

# -- method names -----------------------------------------------------------------------------------

INITIALIZE = "initialize"
INITIALIZED = "notifications/initialized"
PING = "ping"
SERVER_DISCOVER = "server/discover"
TOOLS_LIST = "tools/list"
TOOLS_CALL = "tools/call"
PROMPTS_LIST = "prompts/list"
PROMPTS_GET = "prompts/get"
RESOURCES_LIST = "resources/list"
RESOURCES_READ = "resources/read"
RESOURCE_TEMPLATES_LIST = "resources/templates/list"
RESOURCES_SUBSCRIBE = "resources/subscribe"
RESOURCES_UNSUBSCRIBE = "resources/unsubscribe"
COMPLETION_COMPLETE = "completion/complete"
LOGGING_SET_LEVEL = "logging/setLevel"
SUBSCRIPTIONS_LISTEN = "subscriptions/listen"
SAMPLING_CREATE_MESSAGE = "sampling/createMessage"
ELICITATION_CREATE = "elicitation/create"
ROOTS_LIST = "roots/list"
CANCELLED = "notifications/cancelled"
PROGRESS = "notifications/progress"
LOG_MESSAGE = "notifications/message"
RESOURCE_UPDATED = "notifications/resources/updated"
TOOLS_LIST_CHANGED = "notifications/tools/list_changed"
PROMPTS_LIST_CHANGED = "notifications/prompts/list_changed"
RESOURCES_LIST_CHANGED = "notifications/resources/list_changed"
SUBSCRIPTIONS_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"

LIST_CHANGED = frozenset({TOOLS_LIST_CHANGED, PROMPTS_LIST_CHANGED, RESOURCES_LIST_CHANGED})
# Methods without side effects: replayed once on a fresh session when the upstream died under them.
SAFE_TO_REPLAY = frozenset(
    {
        TOOLS_LIST,
        PROMPTS_LIST,
        RESOURCES_LIST,
        RESOURCE_TEMPLATES_LIST,
        RESOURCES_READ,
        PROMPTS_GET,
        COMPLETION_COMPLETE,
        PING,
    }
)
# Server-to-client requests and the client capability each one needs.
SERVER_REQUEST_CAPABILITY = {
    SAMPLING_CREATE_MESSAGE: "sampling",
    ELICITATION_CREATE: "elicitation",
    ROOTS_LIST: "roots",
}
# The params key a name-bearing request's `Mcp-Name` header mirrors (2026-07-28).
NAME_BEARING_METHODS = {TOOLS_CALL: "name", PROMPTS_GET: "name", RESOURCES_READ: "uri"}
# Results that carry the 2026 cache hints `ttlMs` and `cacheScope`.
CACHEABLE_METHODS = frozenset(
    {SERVER_DISCOVER, TOOLS_LIST, PROMPTS_LIST, RESOURCES_LIST, RESOURCE_TEMPLATES_LIST, RESOURCES_READ}
)
# Requests whose result may be `input_required` (MRTR) in 2026-07-28.
INPUT_REQUIRED_METHODS = frozenset({TOOLS_CALL, PROMPTS_GET, RESOURCES_READ})

# -- logging ----------------------------------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
LOG_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}

# -- HTTP header names (lower case, as ASGI and httpx give them) ------------------------------------

SESSION_ID_HEADER = "mcp-session-id"
PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
PARAM_HEADER_PREFIX = "mcp-param-"

# -- `_meta` keys of the 2026-07-28 envelope --------------------------------------------------------

META_PREFIX = "io.modelcontextprotocol/"
PROTOCOL_VERSION_META = META_PREFIX + "protocolVersion"
CLIENT_CAPABILITIES_META = META_PREFIX + "clientCapabilities"
CLIENT_INFO_META = META_PREFIX + "clientInfo"
LOG_LEVEL_META = META_PREFIX + "logLevel"
SERVER_INFO_META = META_PREFIX + "serverInfo"
SUBSCRIPTION_ID_META = META_PREFIX + "subscriptionId"
# mcpmux's own: the key a 2026 upstream gave a request for input, kept while it travels as a request
INPUT_KEY_META = "dev.mcpmux/inputKey"
# The envelope keys a handshake-era session refuses (they must be stripped before it sees them).
ENVELOPE_META_KEYS = (PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META, CLIENT_INFO_META, LOG_LEVEL_META)

# -- MCP error codes (JSON-RPC's own are in `jsonrpc.py`) -------------------------------------------

RESOURCE_NOT_FOUND = -32002  # handshake era; 2026-07-28 uses -32602
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
URL_ELICITATION_REQUIRED = -32042
REQUEST_CANCELLED = -32800
