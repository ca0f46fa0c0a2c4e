/** Facts about the agent that both programs need: its version and the port it listens on inside a sandbox. */

/** The agent's version (`GET /version`, the agent's OpenAPI document, and what the proxy expects to find). */
export const AGENT_VERSION = '0.1.0';

/** The port the agent listens on inside every sandbox; only the proxy reaches it. */
export const AGENT_PORT = 2280;
